"""Arguments of ``forewarn bench ingest``; the measurement itself is in ``ingest``."""

from __future__ import annotations

import argparse
from typing import Any

from forewarn.argtypes import positive_int

HELP = "the real ingest path (MQTT to decisions) against a bare paho subscriber"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--messages", type=positive_int, default=20_000, help="messages (20000)")
    p.add_argument(
        "--repeats", type=positive_int, default=3, help="drains per consumer, best of (3)"
    )
    p.add_argument(
        "--rows",
        type=positive_int,
        default=10,
        help="rows per message (10: the fridge profile's default, 60 s samples in 600 s batches)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from forewarn.bench.ingest import run_ingest_bench

    return run_ingest_bench(messages=args.messages, rows=args.rows, repeats=args.repeats)
