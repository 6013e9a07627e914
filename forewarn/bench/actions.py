"""``forewarn bench actions``: what dispatch features cost when decisions become tickets.

Three runs in one process on fresh databases (SQLite by default, or ``--database-url``):

- baseline: ``ActionService.apply`` of decisions of distinct root causes into bare tickets;
- dispatch: the same with technicians to auto-assign and two webhook subscriptions, so every
  ticket also records its assignment and queues four signed webhook calls in its transaction;
- replay: the same decisions applied again (every one a duplicate: nothing may change).

Then the relay posts the queued webhook calls to a local HTTP server (deliveries per second).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from forewarn.argtypes import positive_int

HELP = "decisions into tickets with assignment and webhooks, against bare tickets"
T0_MS: Final = 1_767_225_600_000
HOUR_MS: Final = 3_600_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decisions", type=positive_int, default=500, help="root causes (500)")
    p.add_argument("--batch", type=positive_int, default=20, help="decisions per apply (20)")
    p.add_argument("--database-url", help="PostgreSQL URL of an empty database (default SQLite)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    return run_actions_bench(args.decisions, args.batch, args.database_url)


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@contextmanager
def _http_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_actions_bench(n: int, batch: int, database_url: str | None) -> dict[str, Any]:
    import sqlalchemy as sa
    from alembic import command

    from cloud.actions import ActionService, EmailRenderer, EmlDirSender, RetryPolicy
    from cloud.actions.db import alembic_config, create_engine_for, init_schema
    from cloud.decision_types import Action, Decision, Severity, decision_id
    from cloud.errors import ConfigError

    decisions = [
        Decision(
            decision_id=decision_id(f"fr-{i:06d}", "fridge.cooling", T0_MS),
            device_id=f"fr-{i:06d}",
            product_kind="fridge",
            fault="fridge.cooling",
            action=Action.DISPATCH,
            severity=Severity.WARNING,
            episode=1,
            opened_ms=T0_MS,
            ts_ms=T0_MS,
            score=0.8,
            summary="The cabinet is warming up although the compressor runs",
            eta_ms=T0_MS + 40 * HOUR_MS,
            eta_lo_ms=T0_MS + 30 * HOUR_MS,
            eta_hi_ms=T0_MS + 50 * HOUR_MS,
        )
        for i in range(n)
    ]
    out: dict[str, Any] = {
        "decisions": n,
        "batch": batch,
        "database": "postgresql" if database_url else "sqlite",
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}",
    }

    def apply_all(service: ActionService) -> float:
        start = time.perf_counter()
        for i in range(0, n, batch):
            service.apply(decisions[i : i + batch])
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as scratch, _http_sink() as url:
        for label, dispatch in (("baseline", False), ("dispatch", True)):
            db = database_url or f"sqlite:///{Path(scratch) / f'{label}.db'}"
            engine = create_engine_for(db)
            with engine.connect() as conn:
                if sa.inspect(conn).get_table_names():
                    raise ConfigError(f"{db}: the benchmark needs an empty database")
            init_schema(engine)
            retry = RetryPolicy(claim_ms=60_000)
            service = ActionService(
                engine, EmailRenderer(), EmlDirSender(Path(scratch) / "eml"), lambda: T0_MS,
                retry=retry,
            )  # fmt: skip
            for i in range(n):
                service.upsert_device(f"fr-{i:06d}", "fridge", region="north")
            if dispatch:
                for t in range(4):
                    service.technicians.upsert(f"t-{t}", f"Tech {t}", "north", ["refrigeration"])
                for _ in range(2):
                    service.webhooks.add(url, ["*"])
            seconds = apply_all(service)
            out[f"{label}_decisions_per_s"] = round(n / seconds)
            if dispatch:
                out["replay_decisions_per_s"] = round(n / apply_all(service))
                start = time.perf_counter()
                sent = 0
                while (result := service.deliver_pending(500)).sent:
                    sent += result.sent
                out["webhook_calls"] = sent
                out["webhook_deliveries_per_s"] = round(sent / (time.perf_counter() - start))
                out["tickets_assigned"] = service.counts().tickets.get("assigned", 0)
            if database_url:  # leave the server's database as empty as it was
                with engine.begin() as conn:
                    command.downgrade(alembic_config(conn), "base")
                    conn.execute(sa.text("DROP TABLE alembic_version"))
            engine.dispose()
    out["dispatch_vs_baseline"] = round(
        out["dispatch_decisions_per_s"] / out["baseline_decisions_per_s"], 2
    )
    return out
