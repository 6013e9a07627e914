"""The ``forewarn`` command line: ``demo``, ``cloud``, ``edge`` and ``bench``.

Subcommands import what they need only when they run, so that a device with the base install
(``pip install forewarn``: paho-mqtt only) can run ``forewarn edge`` without numpy or FastAPI.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="forewarn", description="Predictive service and replenishment for connected products."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run broker, cloud and a simulated fleet end to end")
    demo.add_argument("--devices", type=_positive_int, default=300, help="fleet size (300)")
    demo.add_argument("--seed", type=int, default=7, help="simulation seed (7)")
    demo.add_argument("--sim-days", type=_positive_float, default=30.0, help="simulated days (30)")
    demo.add_argument("--data-dir", type=Path, default=Path("forewarn-data/demo"))
    demo.add_argument("--port", type=int, default=8000, help="HTTP port of API and page (8000)")
    demo.add_argument("--headless", action="store_true", help="no web server; exit at the end")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    cloud = sub.add_parser("cloud", help="run the cloud service (ingest, actions, API)")
    cloud.add_argument("--port", type=int, help="HTTP port (default FOREWARN_HTTP_PORT or 8000)")

    sub.add_parser("edge", help="run one device agent (see 'forewarn edge --help')", add_help=False)

    bench = sub.add_parser("bench", help="benchmarks that print figures against a baseline")
    bench.add_argument("target", choices=["ingest"], help="what to measure")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--messages", type=_positive_int, default=20_000)
    bench.add_argument(
        "--repeats", type=_positive_int, default=3, help="drains per consumer, best of (3)"
    )
    bench.add_argument(
        "--rows",
        type=_positive_int,
        default=10,
        help="rows per message (10: the fridge profile's default, 60 s samples in 600 s batches)",
    )
    return p


def _on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _demo(args: argparse.Namespace) -> int:
    from forewarn.demo import Demo, DemoOptions

    opts = DemoOptions(
        devices=args.devices,
        seed=args.seed,
        sim_days=args.sim_days,
        data_dir=args.data_dir,
        port=args.port,
        headless=args.headless,
    )

    def show(summary: dict[str, object]) -> None:
        if args.json:
            print(json.dumps(summary), flush=True)
        else:
            for key, value in summary.items():
                print(f"{key:>34}: {value}", flush=True)

    demo = Demo(
        opts,
        progress=lambda msg: print(f"[demo] {msg}", file=sys.stderr, flush=True),
        on_summary=show,
    )
    _on_signals(demo.stop_requested)
    demo.run()
    return 0


def _cloud(args: argparse.Namespace) -> int:
    import uvicorn

    from cloud.api.app import create_app
    from cloud.config import load_settings
    from cloud.service import CloudService

    settings = load_settings()
    service = CloudService(settings)
    service.start()
    port = args.port if args.port is not None else settings.http_port
    try:
        uvicorn.run(create_app(service), host=settings.http_host, port=port, log_level="info")
    finally:
        service.stop()
    return 0


def _bench(args: argparse.Namespace) -> int:
    from forewarn.bench.ingest import run_ingest_bench

    result = run_ingest_bench(messages=args.messages, rows=args.rows, repeats=args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0


def _sim_source(kind: str, location: str, speed: float) -> Any:
    """``sim:SEED`` (a healthy device) or ``sim:SEED:fault`` (one with a fault planned)."""
    from edge.errors import EdgeConfigError

    seed_text, _, flag = location.partition(":")
    if not seed_text.isdigit() or flag not in ("", "fault"):
        raise EdgeConfigError(f"sim:{location}: use sim:SEED or sim:SEED:fault (SEED an integer)")
    try:
        from simulators.source import SimulatedDeviceSource
    except ImportError as exc:  # an edge-only install has no numpy
        raise EdgeConfigError(f"sim: sources need 'pip install forewarn[sim]' ({exc})") from exc
    return SimulatedDeviceSource(
        kind, int(seed_text), speed=speed, fault_share=1.0 if flag else 0.0
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "edge":
        from edge.cli import main as edge_main

        return edge_main(argv[1:], sources={"sim": _sim_source})
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from cloud.errors import ConfigError, ForewarnError

    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "cloud":
            return _cloud(args)
        if args.command == "bench":
            return _bench(args)
    except ConfigError as exc:
        print(f"forewarn: configuration error: {exc}", file=sys.stderr)
        return 2
    except ForewarnError as exc:  # e.g. the broker or database cannot be reached at start-up
        print(f"forewarn: {exc}", file=sys.stderr)
        return 1
    print(f"forewarn: unknown command {args.command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
