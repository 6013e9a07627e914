"""The ``forewarn`` command line: ``demo``, ``cloud``, ``edge`` and ``bench``.

Subcommands import what they need only when they run, so that a device with the base install
(``pip install forewarn``: paho-mqtt only) can run ``forewarn edge`` without numpy or FastAPI.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from forewarn.argtypes import positive_float, positive_int

# Subcommands that live in modules of their own. Each module defines ``HELP`` (one line),
# ``add_arguments(parser)`` and ``run(args)``, and imports at module level only what parsing needs
# (the standard library), so that ``forewarn --help`` and ``forewarn edge`` stay light.
# ``run`` returns the exit code for a command, and a dict of figures for a benchmark.
COMMANDS: dict[str, str] = {
    "actions": "forewarn.actions_cli",
    "backtest": "forewarn.backtest.cli",
    "detect": "forewarn.detect",
    "provision": "forewarn.provision",
    "users": "forewarn.users",
}
BENCHES: dict[str, str] = {
    "actions": "forewarn.bench.actions",
    "core": "forewarn.bench.core",
    "email": "forewarn.bench.customer_email",
    "ingest": "forewarn.bench.ingest_cli",
    "sim": "forewarn.bench.sim_cli",
    "soak": "forewarn.bench.soak",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="forewarn", description="Predictive service and replenishment for connected products."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run broker, cloud and a simulated fleet end to end")
    demo.add_argument("--devices", type=positive_int, default=300, help="fleet size (300)")
    demo.add_argument("--seed", type=int, default=7, help="simulation seed (7)")
    demo.add_argument("--sim-days", type=positive_float, default=30.0, help="simulated days (30)")
    demo.add_argument("--data-dir", type=Path, default=Path("forewarn-data/demo"))
    demo.add_argument("--port", type=int, default=8000, help="HTTP port of API and page (8000)")
    demo.add_argument("--headless", action="store_true", help="no web server; exit at the end")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    cloud = sub.add_parser("cloud", help="run the cloud service (ingest, actions, API)")
    cloud.add_argument("--port", type=int, help="HTTP port (default FOREWARN_HTTP_PORT or 8000)")

    sub.add_parser("edge", help="run one device agent (see 'forewarn edge --help')", add_help=False)

    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)

    bench = sub.add_parser("bench", help="benchmarks that print figures against a baseline")
    targets = bench.add_subparsers(dest="target", required=True, metavar="TARGET")
    for name, module_name in BENCHES.items():
        module = importlib.import_module(module_name)
        target = targets.add_parser(name, help=module.HELP, description=module.HELP)
        target.add_argument("--json", action="store_true", help="print one JSON object")
        module.add_arguments(target)
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
    module = importlib.import_module(BENCHES[args.target])
    result: dict[str, Any] = module.run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
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
        if args.command in COMMANDS:
            code: int = importlib.import_module(COMMANDS[args.command]).run(args)
            return code
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
