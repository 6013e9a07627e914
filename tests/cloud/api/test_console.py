"""The console's pages and forms: sign-in, fleet, device charts, ticket actions, live events,
messages, dead letters and the backtest report viewer."""

from __future__ import annotations

import re

from cloud.api.charts import ChartSeries, Marks, render_chart
from tests.cloud.api.conftest import PASSWORD, sign_in


def _csrf(html: str) -> str:
    return html.split('name="csrf" value="')[1].split('"')[0]


def test_pages_redirect_to_the_login_until_signed_in(client):
    for path in ("/", "/devices", "/devices/ty-000001", "/tickets", "/emails", "/dead-letters",
                 "/reports", "/events"):  # fmt: skip
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")


def test_fleet_overview_and_device_page_with_charts(client, fleet):
    sign_in(client, "read-only")
    home = client.get("/")
    assert home.status_code == 200
    assert re.search(r"<td><a href=\"/devices\?kind=tyres\">tyres</a></td><td>2</td>", home.text)
    assert "ty-000001" in home.text  # critical: needs attention
    listed = client.get("/devices", params={"health": "critical"}).text
    assert "ty-000002" in listed
    page = client.get("/devices/ty-000001")
    assert page.status_code == 200
    charts = re.findall(r'<svg class="chart"[^>]*data-channel="([^"]+)" data-points="(\d+)"',
                        page.text)  # fmt: skip
    assert ("fr.pressure_kpa", "12") in charts
    assert charts[0][0] == "fr.pressure_kpa"  # what the prediction leans on comes first
    assert 'class="onset"' in page.text
    assert "tyres.pressure.fr" in page.text
    assert client.get("/devices/nope-000000").status_code == 404


def test_dispatcher_assigns_and_technician_resolves_with_forms(client, fleet):
    fleet.service.actions.technicians.upsert("tech-1", "Tess Tech", "north", ["tyres"])
    ticket = fleet.service.actions.tickets()[0]
    sign_in(client, "dispatcher")
    queue = client.get("/tickets")
    assert ticket.reference in queue.text
    assert 'value="tech-1"' in queue.text
    csrf = _csrf(queue.text)
    forged = client.post(f"/tickets/{ticket.id}/assign",
                         data={"csrf": "nope", "technician_id": "tech-1"})  # fmt: skip
    assert forged.status_code == 403
    r = client.post(f"/tickets/{ticket.id}/assign",
                    data={"csrf": csrf, "technician_id": "tech-1", "back": "/tickets"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert fleet.service.actions.ticket(ticket.id).assignee_id == "tech-1"
    client.cookies.clear()
    sign_in(client, "technician")
    page = client.get(f"/tickets/{ticket.id}")
    csrf = _csrf(page.text)
    assert "Assign</button>" not in page.text  # technicians do not assign
    denied = client.post(f"/tickets/{ticket.id}/assign",
                         data={"csrf": csrf, "technician_id": "tech-1"})  # fmt: skip
    assert denied.status_code == 403
    for verb, data in (("acknowledge", {}), ("transition", {"status": "en_route"}),
                       ("transition", {"status": "on_site"}),
                       ("resolve", {"closure_code": "no_fault_found"})):  # fmt: skip
        r = client.post(f"/tickets/{ticket.id}/{verb}", data={"csrf": csrf, **data},
                        follow_redirects=False)  # fmt: skip
        assert r.status_code == 303, (verb, r.text)
    done = fleet.service.actions.ticket(ticket.id)
    assert (done.status, done.closure_code) == ("resolved", "no_fault_found")
    history = client.get(f"/tickets/{ticket.id}").text
    assert "user:technician" in history
    assert "user:dispatcher" in history
    resolved = client.get("/tickets", params={"status": "resolved"}).text
    assert ticket.reference in resolved
    assert client.post(f"/tickets/{ticket.id}/explode", data={"csrf": csrf}).status_code == 404


def test_live_events_announce_a_ticket_change(client, fleet):
    sign_in(client, "admin")
    ticket = fleet.service.actions.tickets()[0]
    with client.stream("GET", "/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        fleet.service.actions.acknowledge(ticket.id, actor="user:admin")
        # One poll a second: the change must be announced within a few lines.
        line = ""
        for _count, line in zip(range(12), lines, strict=False):
            if line.startswith("event:"):
                break
        assert line == "event: tickets"


def test_message_log_renders_the_email_as_sent(client, fleet):
    sign_in(client, "read-only")
    log = client.get("/emails")
    assert "ada@example.com" in log.text
    email_id = re.search(r'href="/emails/(\d+)"', log.text).group(1)
    page = client.get(f"/emails/{email_id}")
    assert page.status_code == 200
    assert '<iframe class="preview" sandbox' in page.text
    assert "srcdoc=" in page.text
    assert "<html" not in page.text.split("srcdoc=")[1][:200]  # escaped into the attribute


def test_customer_user_sees_only_their_devices_and_no_operator_pages(client, fleet):
    sign_in(client, "ada")
    assert "ty-000002" not in client.get("/devices").text
    assert client.get("/devices/ty-000002").status_code == 404
    assert client.get("/dead-letters").status_code == 403
    assert client.get("/reports").status_code == 403
    emails = client.get("/emails").text
    assert "ada@example.com" in emails
    assert "bob@example.com" not in emails


def test_dead_letter_inspector_shows_reasons_and_escapes_payloads(client, fleet):
    from cloud.wire import RawMessage

    fleet.service.pipeline.process(
        [RawMessage("forewarn/v1/tyres/ty-000001/telemetry", b"<script>alert(1)</script>", 1)]
    )
    sign_in(client, "dispatcher")
    page = client.get("/dead-letters")
    assert "encoding" in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "toaster" in client.get("/dead-letters", params={"reason": "topic"}).text
    client.cookies.clear()
    sign_in(client, "technician")
    assert client.get("/dead-letters").status_code == 403


def test_report_viewer_lists_and_serves_files_but_nothing_outside(client, fleet, tmp_path):
    root = fleet.service.settings.reports_dir
    (root / "winter").mkdir(parents=True)
    (root / "winter" / "metrics.json").write_text('{"detected_before_failure_pct": 91.0}')
    (root / "winter" / "timeline.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "winter" / "evil.html").write_text("<script>alert(1)</script>")
    (tmp_path / "secret.json").write_text("{}")
    sign_in(client, "read-only")
    page = client.get("/reports").text
    assert "winter" in page
    assert '<img src="/reports/file/winter/timeline.png"' in page
    served = client.get("/reports/file/winter/metrics.json")
    assert served.json() == {"detected_before_failure_pct": 91.0}
    assert client.get("/reports/file/winter/timeline.png").headers["content-type"] == "image/png"
    evil = client.get("/reports/file/winter/evil.html")
    assert evil.headers["content-type"].startswith("text/html")
    # Shown, but sandboxed: no script runs, and it cannot act as the console.
    assert evil.headers["content-security-policy"].startswith("sandbox;")
    assert "script-src" not in evil.headers["content-security-policy"]
    for bad in ("../secret.json", "..%2Fsecret.json", "winter/../../secret.json", "nope.json"):
        assert client.get(f"/reports/file/{bad}").status_code == 404, bad


def test_logout_ends_the_session(client):
    sign_in(client, "admin")
    csrf = _csrf(client.get("/").text)
    assert client.post("/logout", data={"csrf": "x"}).status_code == 403
    r = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_wrong_password_shows_an_error_on_the_form(client):
    page = client.get("/login")
    r = client.post("/login", data={"username": "admin", "password": PASSWORD + "x",
                    "csrf": _csrf(page.text)})  # fmt: skip
    assert r.status_code == 200
    assert "wrong username or password" in r.text


def test_chart_draws_line_band_onset_and_eta_interval_and_escapes_labels():
    series = ChartSeries("<b>temp</b>", [0, 1000, 2000], [1.0, 2.0, None], [0.5, 1.5, None],
                         [1.5, 2.5, None])  # fmt: skip
    svg = render_chart(series, Marks(onset_ms=1000, eta_ms=3000, eta_lo_ms=2500, eta_hi_ms=3500))
    assert svg.startswith('<svg class="chart"')
    assert 'data-points="2"' in svg
    assert "<b>" not in svg
    assert "&lt;b&gt;temp&lt;/b&gt;" in svg
    for part in ('class="line"', 'class="range"', 'class="onset"', 'class="eta"',
                 'class="eta-band"'):  # fmt: skip
        assert part in svg
    empty = render_chart(ChartSeries("x", [], [], [], []))
    assert "no readings of x" in empty


def test_redirects_after_login_stay_on_this_site():
    from cloud.api.pages import safe_next

    for path in ("/", "/tickets?status=open&priority=P1", "/devices/fr-000001"):
        assert safe_next(path) == path
    for path in ("//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example",
                 "https://evil.example", "evil", "", "/a b"):  # fmt: skip
        assert safe_next(path) == "/", path


def test_repeated_wrong_passwords_lock_the_name_for_a_while(client):
    for _ in range(5):
        page = client.get("/login")
        r = client.post("/login", data={"username": "admin", "password": "wrong-wrong-wrong",
                        "csrf": _csrf(page.text)}, follow_redirects=False)  # fmt: skip
        assert r.status_code == 303
    page = client.get("/login")
    right = client.post("/login", data={"username": "admin", "password": PASSWORD,
                        "csrf": _csrf(page.text)}, follow_redirects=False)  # fmt: skip
    assert right.status_code == 429
    sign_in(client, "dispatcher")  # other names are unaffected


def test_login_throttle_forgets_old_failures():
    from cloud.api.login import LoginThrottle

    throttle = LoginThrottle(max_failures=2, window_s=10)
    keys = ("user:a",)
    throttle.failed(keys, now=0)
    throttle.failed(keys, now=1)
    assert throttle.blocked(keys, now=5)
    assert not throttle.blocked(("user:b",), now=5)
    assert not throttle.blocked(keys, now=10.5)  # the first failure is older than the window
    throttle.failed(keys, now=11)
    throttle.succeeded(keys)
    assert not throttle.blocked(keys, now=11)
