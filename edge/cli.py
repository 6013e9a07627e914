"""``forewarn edge``: run one device agent that replays a sensor source to the broker."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from urllib.parse import unquote, urlsplit

from edge.agent import AgentStats, EdgeAgent
from edge.channels import catalog
from edge.config import AgentConfig
from edge.errors import EdgeConfigError, EdgeError
from edge.outbox import wall_clock_ms
from edge.sources import CsvReplaySource, ReplaySource
from firmware_specs import DEVICE_ID_PATTERN, DEVICE_ID_RE, KINDS, load_profile

# Other packages can offer sources by URL scheme, e.g. the simulators' ``sim:SEED``.
SourceFactory = Callable[[str, str, float], ReplaySource]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_DRAINED = 3
PASSWORD_ENV = "FOREWARN_MQTT_PASSWORD"  # noqa: S105 - the name of a variable, not a secret

_EPILOG = f"""\
The broker password is read from ${PASSWORD_ENV} (or the URL), never from a flag.
Exit status: 0 all messages delivered; 1 runtime error; 2 bad arguments or input;
3 stopped with messages still in the outbox (they are sent on the next run).

example:
  forewarn edge --kind fridge --device-id fr-0001 --source csv:fridge.csv --speed 60
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forewarn edge",
        description="Run one device agent: replay a sensor source and publish it over MQTT "
        "with an on-disk outbox.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kind", required=True, choices=KINDS, help="product kind")
    parser.add_argument(
        "--device-id", required=True, type=_device_id, help=f"device id ({DEVICE_ID_PATTERN})"
    )
    parser.add_argument(
        "--broker",
        default="mqtt://127.0.0.1:1883",
        help="broker URL, mqtt://host:port or mqtts://host:port (default %(default)s)",
    )
    parser.add_argument(
        "--outbox",
        type=Path,
        help="outbox file (default forewarn-data/edge/DEVICE_ID.outbox.sqlite)",
    )
    parser.add_argument(
        "--source", required=True, type=_source, help="sensor source: csv:FILE (or sim:SEED)"
    )
    parser.add_argument(
        "--speed", type=_positive_float, default=1.0, help="replay speed-up (default 1)"
    )
    parser.add_argument(
        "--batch-rows",
        type=_batch_rows,
        default=60,
        help="rows per telemetry message at most (1..720, default %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=50.0,
        help="messages per second when replaying a backlog (default %(default)s)",
    )
    parser.add_argument("--username", help="broker user name")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate file (implies TLS)")
    parser.add_argument("--tls-cert", type=Path, help="client certificate file")
    parser.add_argument("--tls-key", type=Path, help="client private key file")
    parser.add_argument("--model", default="", help="model name reported in the birth message")
    parser.add_argument("--fw", default="1.0.0", help="firmware version (default %(default)s)")
    parser.add_argument(
        "--drain-timeout",
        type=_positive_float,
        default=30.0,
        help="seconds to wait for acknowledgements when stopping (default %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection events")
    return parser


def main(
    argv: Sequence[str] | None = None, sources: Mapping[str, SourceFactory] | None = None
) -> int:
    """Run the agent; ``sources`` adds source schemes beside ``csv``."""
    factories: dict[str, SourceFactory] = {"csv": _csv_source, **(sources or {})}
    parser = build_parser()
    args = parser.parse_args(argv)
    scheme, location = args.source
    if scheme not in factories:
        known = ", ".join(f"{k}:..." for k in factories)
        parser.error(f"--source {scheme}:{location}: unknown source; use one of {known}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        source = factories[scheme](args.kind, location, float(args.speed))
        for channel in source.channels:
            catalog(args.kind).range_of(channel)
        config = _config(args, source)
        agent = EdgeAgent(config)
    except EdgeError as exc:
        print(f"forewarn edge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run(agent, source)


def _csv_source(kind: str, location: str, speed: float) -> ReplaySource:
    return CsvReplaySource(Path(location), speed=speed)


def _run(agent: EdgeAgent, source: ReplaySource) -> int:
    stop = threading.Event()
    restore = _install_signal_handlers(stop)
    status = EXIT_OK
    try:
        agent.start()
        while not stop.is_set():
            for ts_ms, values in source.read(wall_clock_ms()):
                agent.submit(ts_ms, values)
            due_ms = source.next_due_ms()
            if due_ms is None:
                break
            stop.wait(min(1.0, max(0.0, (due_ms - wall_clock_ms()) / 1000)))
    except EdgeError as exc:
        print(f"forewarn edge: error: {exc}", file=sys.stderr)
        status = EXIT_FAILED
    finally:
        try:
            agent.stop(graceful=True)
        finally:
            restore()
    stats = agent.stats
    print(_summary(agent.config.device_id, stats, interrupted=stop.is_set()))
    if status == EXIT_OK and stats.outbox_depth > 0:
        status = EXIT_NOT_DRAINED
    return status


def _summary(device_id: str, stats: AgentStats, *, interrupted: bool) -> str:
    how = "interrupted" if interrupted else "source finished"
    return (
        f"forewarn edge {device_id} ({how}): {stats.readings_submitted} readings, "
        f"{stats.messages_enqueued} messages sealed, {stats.messages_acked} acknowledged, "
        f"{stats.outbox_depth} left in the outbox, {stats.dropped} dropped, "
        f"{stats.commands_received} commands received"
    )


def _config(args: argparse.Namespace, source: ReplaySource) -> AgentConfig:
    url = urlsplit(args.broker)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise EdgeConfigError(
            f"--broker {args.broker!r} must look like mqtt://host:port or mqtts://host:port"
        )
    try:
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
    except ValueError as exc:
        raise EdgeConfigError(f"--broker {args.broker!r}: {exc}") from exc
    username = args.username or (unquote(url.username) if url.username else None)
    password = os.environ.get(PASSWORD_ENV) or (unquote(url.password) if url.password else None)
    profile = load_profile(args.kind)
    # Keep the profile's rows per message: a CSV replay compresses its time by the speed-up, a
    # simulated source keeps real timestamps, and both report their spacing in their own time.
    rows_per_batch = int(profile["batch_interval_s"]["default"]) / int(
        profile["sample_interval_s"]["default"]
    )
    batch_interval_s = max(1, round(rows_per_batch * source.sample_interval_s))
    sample_interval_s = min(86400, max(1, round(source.sample_interval_s)))
    return AgentConfig(
        device_id=args.device_id,
        kind=args.kind,
        host=url.hostname,
        port=port,
        outbox_path=args.outbox or Path("forewarn-data", "edge", f"{args.device_id}.outbox.sqlite"),
        batch_max_rows=args.batch_rows,
        replay_rate_msgs_per_s=args.rate,
        fw=args.fw,
        model=args.model or source.model,
        attributes=source.attributes,
        sample_interval_s=sample_interval_s,
        batch_interval_s=batch_interval_s,
        username=username,
        password=password if username else None,
        tls=url.scheme == "mqtts" or args.tls_ca is not None,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        drain_timeout_s=args.drain_timeout,
    )


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGINT and SIGTERM ask for a graceful stop; returns a function that undoes this."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals are only delivered to the main thread

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _device_id(text: str) -> str:
    if not DEVICE_ID_RE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} must match {DEVICE_ID_PATTERN}")
    return text


def _source(text: str) -> tuple[str, str]:
    scheme, _, rest = text.partition(":")
    if not scheme or not rest:
        raise argparse.ArgumentTypeError(f"{text!r}: a source looks like csv:FILE or sim:SEED")
    return scheme, rest


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _batch_rows(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= value <= 720:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1..720 (the contract's maximum)")
    return value


if __name__ == "__main__":
    sys.exit(main())
