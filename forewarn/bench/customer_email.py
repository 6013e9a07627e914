"""``forewarn bench email``: what consent, threads, quiet hours and caps cost per customer email.

Two pairs of runs in one process, each against a baseline measured in the same run:

- queue: ``mailer.queue_email`` (consent lookup, thread row, the day's count for the cap, send
  time) against a bare insert of the same outbox and email rows, on a fresh database
  (SQLite by default, or ``--database-url``);
- render: ``EmailRenderer.render`` + ``build_message`` + serialisation of every kind in every
  language against ``build_message`` + serialisation of an already rendered email.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import replace
from datetime import time as day_time
from email.policy import SMTP
from pathlib import Path
from typing import Any, Final

from forewarn.argtypes import positive_int

HELP = "queueing (consent, threads, caps) and rendering customer emails, against bare inserts"
T0_MS: Final = 1_767_276_000_000  # 2026-01-01T14:00:00Z: daytime in Europe


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--emails", type=positive_int, default=2000, help="emails queued (2000)")
    p.add_argument("--customers", type=positive_int, default=200, help="customers (200)")
    p.add_argument("--database-url", help="PostgreSQL URL of an empty database (default SQLite)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    return run_email_bench(args.emails, args.customers, args.database_url)


def run_email_bench(emails: int, customers: int, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="forewarn-email-bench-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'email.db'}"
        queued_s, bare_s, deferred = _queue_runs(url, emails, customers)
    rendered, render_s, mime_s = _render_runs()
    return {
        "database": "postgresql" if database_url else "sqlite",
        "emails": emails,
        "customers": customers,
        "queue_per_s": round(emails / queued_s),
        "baseline_bare_insert_per_s": round(emails / bare_s),
        "queue_cost_x": round(queued_s / bare_s, 2),
        "deferred_by_cap": deferred,
        "rendered": rendered,
        "render_and_build_per_s": round(rendered / render_s),
        "baseline_build_only_per_s": round(rendered / mime_s),
        "render_cost_x": round(render_s / mime_s, 2),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}",
    }


def _queue_runs(url: str, emails: int, customers: int) -> tuple[float, float, int]:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from cloud.actions.consent import SendPolicy
    from cloud.actions.db import CustomerRow, EmailRow, OutboxRow, create_engine_for, init_schema
    from cloud.actions.email import EmailFacts, message_id_for
    from cloud.actions.mailer import Content, MailSettings, queue_email

    engine = create_engine_for(url)
    init_schema(engine)
    settings = MailSettings(
        "bench.invalid", SendPolicy(daily_cap=3, quiet_from=day_time(21), quiet_until=day_time(8))
    )
    with Session(engine) as session, session.begin():
        session.add_all(
            CustomerRow(id=f"c-{i}", name=f"Customer {i}", email=f"c{i}@example.org",
                        locale="de", tz="Europe/Berlin", created_ms=T0_MS)
            for i in range(customers)
        )  # fmt: skip
    content = Content(product_kind="fridge", nickname="Kitchen", fault="fridge.cooling",
                      summary="warming up", ticket_ref="FW-000001")  # fmt: skip
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        rows = {c.id: c for c in session.scalars(sa.select(CustomerRow))}
        for i in range(emails):
            queue_email(
                session, key=f"email:bench-{i}:opened", kind="dispatch_opened",
                customer=rows[f"c-{i % customers}"], correlation_id=f"bench-{i}",
                content=content, now_ms=T0_MS, settings=settings,
            )  # fmt: skip
        deferred = int(
            session.scalar(
                sa.select(sa.func.count()).where(OutboxRow.next_attempt_ms > T0_MS)
            ) or 0
        )  # fmt: skip
    queued_s = time.perf_counter() - started

    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        for i in range(emails):
            key = f"email:bare-{i}:opened"
            customer = f"c-{i % customers}"
            facts = EmailFacts(
                kind="dispatch_opened", locale="de", tz="Europe/Berlin", to_name="Customer",
                to_addr="c@example.org", nickname="Kitchen", product_kind="fridge",
                fault="fridge.cooling", summary="warming up", ticket_ref="FW-000001",
                correlation_id=f"bare-{i}", message_id=message_id_for(key, "bench.invalid"),
            )  # fmt: skip
            session.execute(
                sa.insert(OutboxRow).values(
                    idempotency_key=key, kind="email", payload=facts.to_payload(),
                    state="pending", attempts=0, claims=0, next_attempt_ms=T0_MS,
                    created_ms=T0_MS,
                )
            )  # fmt: skip
            session.execute(
                sa.insert(EmailRow).values(
                    message_id=facts.message_id, correlation_id=facts.correlation_id,
                    customer_id=customer, to_addr=facts.to_addr, kind=facts.kind,
                    status="queued", created_ms=T0_MS,
                )
            )  # fmt: skip
    bare_s = time.perf_counter() - started
    engine.dispose()
    return queued_s, bare_s, deferred


def _render_runs(rounds: int = 20) -> tuple[int, float, float]:
    from cloud.actions.branding import load_brand
    from cloud.actions.consent import KINDS, UnsubscribeTokens
    from cloud.actions.customer_mail import render_preview
    from cloud.actions.email import EmailRenderer, build_message
    from cloud.actions.email_locales import LANGUAGES

    brand = load_brand()
    renderer = EmailRenderer(brand=brand, tokens=UnsubscribeTokens(b"bench-key-" * 4))
    samples = [
        (kind, locale, render_preview(kind, locale, brand, renderer))
        for kind in KINDS
        for locale in LANGUAGES
    ]

    def build(rendered: Any) -> bytes:
        msg = build_message(
            brand=brand, to_name="Alex Example", to_addr="alex@example.org", rendered=rendered,
            message_id="<bench@bench.invalid>", correlation_id="bench", date_ms=T0_MS,
        )  # fmt: skip
        return msg.as_bytes(policy=SMTP)

    started = time.perf_counter()
    for _ in range(rounds):
        for kind, locale, _rendered in samples:
            build(render_preview(kind, locale, brand, renderer))
    render_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(rounds):
        for _kind, _locale, rendered in samples:
            build(replace(rendered))
    mime_s = time.perf_counter() - started
    return rounds * len(samples), render_s, mime_s
