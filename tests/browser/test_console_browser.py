"""The console in a real headless Chromium (the system's, driven by Playwright) against a real
uvicorn server: sign in, assign and resolve a ticket, open a device page whose chart renders.

Screenshots go to ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from cloud import accounts
from cloud.accounts import Role
from cloud.api.app import create_app
from cloud.config import load_settings
from cloud.service import CloudService
from forewarn.broker import free_port
from forewarn.clock import SimClock
from tests.cloud.api.conftest import PASSWORD, STEP, T0, punctured

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

if not CHROMIUM.exists():
    pytest.fail("Chromium is missing: scripts/setup.sh --dev installs it", pytrace=False)


@pytest.fixture(scope="module")
def console_url(session_broker, tmp_path_factory) -> Iterator[tuple[str, CloudService]]:
    import uvicorn

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(accounts, "SCRYPT_N", 2**10)
        clock = SimClock(T0)
        service = CloudService(
            load_settings(
                data_dir=tmp_path_factory.mktemp("browser"),
                mqtt_url=session_broker.url,
                ingest_receiver="thread",
            ),
            clock_ms=clock.now_ms,
        )
        service.actions.upsert_customer("c-1", "Ada", "ada@example.com")
        service.actions.upsert_device("ty-000001", "tyres", "c-1", "Family car")
        service.actions.technicians.upsert("tech-ana", "Ana Field", "north", ["tyres"])
        service.start()
        clock.set(T0 + 12 * STEP)
        service.pipeline.process(punctured("ty-000001"))
        service.accounts.create_user("dispatch", PASSWORD, Role.DISPATCHER)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(service), host="127.0.0.1", port=port, log_level="warning",
                timeout_graceful_shutdown=2,
            )
        )  # fmt: skip
        thread = threading.Thread(target=server.run, name="console-test-http", daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        try:
            yield f"http://127.0.0.1:{port}", service
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            service.stop()


@pytest.fixture
def page(console_url) -> Iterator[object]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        # A phone-sized screen: the console must be usable there.
        context = browser.new_context(viewport={"width": 412, "height": 915})
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def _sign_in(page, base: str) -> None:
    page.goto(f"{base}/tickets")
    assert "/login" in page.url
    page.fill("input[name=username]", "dispatch")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/tickets")


def test_sign_in_assign_and_resolve_a_ticket(page, console_url):
    base, service = console_url
    _sign_in(page, base)
    page.screenshot(path=str(ARTIFACTS / "console-tickets.png"), full_page=True)
    row = page.locator("tr[data-ticket]").first
    ticket_id = int(row.get_attribute("data-ticket"))
    assert row.get_attribute("data-status") == "new"
    row.locator("select[name=technician_id]").select_option("tech-ana")
    row.locator("button", has_text="Assign").click()
    page.wait_for_selector(f"tr[data-ticket='{ticket_id}'][data-status='assigned']")
    assert service.actions.ticket(ticket_id).assignee_id == "tech-ana"
    # Moving it along from outside the page: the queue updates itself (server-sent events).
    page.wait_for_selector("#live.on")
    service.actions.move(ticket_id, "en_route", actor="tech-ana")
    service.actions.move(ticket_id, "on_site", actor="tech-ana")
    page.wait_for_selector(f"tr[data-ticket='{ticket_id}'][data-status='on_site']")
    row = page.locator(f"tr[data-ticket='{ticket_id}']")
    row.locator("select[name=closure_code]").select_option("fault_confirmed")
    row.locator("button", has_text="Resolve").click()
    page.wait_for_load_state()
    done = service.actions.ticket(ticket_id)
    assert (done.status, done.closure_code) == ("resolved", "fault_confirmed")
    page.goto(f"{base}/tickets/{ticket_id}")
    assert page.inner_text("#ticket-status") == "resolved"
    assert "user:dispatch" in page.inner_text("ol.events")
    page.screenshot(path=str(ARTIFACTS / "console-ticket-resolved.png"), full_page=True)


def test_device_page_renders_its_chart(page, console_url):
    base, _service = console_url
    _sign_in(page, base)
    page.goto(f"{base}/devices/ty-000001")
    chart = page.locator("svg.chart[data-channel='fr.pressure_kpa']")
    chart.wait_for()
    assert int(chart.get_attribute("data-points")) == 12
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 200
    assert box["height"] > 50
    line = chart.locator("polyline.line")
    assert line.count() == 1
    assert len(line.get_attribute("points").split()) == 12
    assert chart.locator("line.onset").count() == 1
    page.screenshot(path=str(ARTIFACTS / "console-device.png"), full_page=True)
