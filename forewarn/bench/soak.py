"""``forewarn bench soak``: the whole cloud at half its measured ingest rate for a long time.

First a short ``bench ingest`` drain measures what ingest can take on this machine (the
baseline); then a paced publisher, in a process of its own, feeds a private Mosquitto at half
that rate for ``--minutes`` while the cloud service (receiver process, pipeline, stores, outbox
relay, snapshots) runs as in production. The cloud's clock follows the data time of the newest
reading published, which runs faster than the wall clock (each message carries ten minutes).
Every few seconds the soak samples the resident memory of the cloud (this process and its
receiver child) and of the broker, and the lag (messages the broker has acknowledged to the
publisher but the cloud has not yet processed). Memory growth is measured from the end of a
warm-up (a fifth of the run) to the end: caches and the first snapshot are allowed to fill
first. Target: growth under 10 %.

Resident memory is read from ``/proc`` (Linux).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from forewarn.argtypes import positive_float, positive_int

HELP = "memory growth and lag of the cloud at half its measured ingest rate (--minutes 10)"
SAMPLE_EVERY_S = 5.0
INFLIGHT = 1000  # the publisher's unacknowledged messages at most
WARMUP_SHARE = 0.2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=positive_float, default=10.0, help="soak length (10)")
    p.add_argument("--devices", type=positive_int, default=500, help="fleet size (500)")
    p.add_argument("--rows", type=positive_int, default=10, help="rows per message (10)")
    p.add_argument(
        "--rate",
        type=positive_float,
        help="messages/s to publish (default: half the rate measured first)",
    )


def _rss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces: split after it
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


class _Feed:
    """Telemetry of ``devices`` fridges, one message at a time, data time moving forward."""

    def __init__(self, devices: int, rows: int, start_ms: int) -> None:
        import orjson

        self._dumps = orjson.dumps
        self.devices, self.rows, self.start_ms = devices, rows, start_ms
        self.sent = 0
        self.newest_ms = start_ms

    def next(self) -> tuple[str, bytes]:
        k, d = divmod(self.sent, self.devices)
        self.sent += 1
        dev = f"fr-{d:06d}"
        t0 = self.start_ms + k * self.rows * 60_000
        ts = [t0 + i * 60_000 for i in range(self.rows)]
        self.newest_ms = max(self.newest_ms, ts[-1])
        values = {
            "cabinet_c": [4.0 + 0.1 * ((k + i) % 5) for i in range(self.rows)],
            "compressor_on": [0.4] * self.rows,
            "mains_ok": [1.0] * self.rows,
        }
        body = {"v": 1, "device_id": dev, "kind": "fridge", "seq": k, "sent_ms": ts[-1],
                "ts_ms": ts, "values": values}  # fmt: skip
        return f"forewarn/v1/fridge/{dev}/telemetry", self._dumps(body)


def _publish(
    host: str,
    port: int,
    shape: tuple[int, int, int],
    rate: float,
    duration_s: float,
    sent: Any,
    newest: Any,
) -> None:  # pragma: no cover - runs in the publisher process
    """Publish a :class:`_Feed` of ``shape`` (devices, rows, start) at ``rate`` msgs/s for
    ``duration_s``; share progress through ``sent`` (messages the broker has acknowledged,
    so holds for the cloud) and ``newest`` (data time of the newest reading published).

    A message handed to paho is not yet on the broker. The publisher keeps at most
    :data:`INFLIGHT` unacknowledged, so if the broker cannot keep the pace the achieved rate
    says so; only acknowledged messages count, and the publisher waits for the
    last acknowledgement before it disconnects, so the soak never counts a message the cloud
    could not have received.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    feed = _Feed(*shape)
    newest.value = feed.newest_ms
    acked = 0

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: object, p: object) -> None:
        nonlocal acked
        acked += 1

    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="soak-publisher")
    publisher.max_inflight_messages_set(INFLIGHT)
    publisher.on_publish = on_publish
    publisher.connect(host, port)
    publisher.loop_start()
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < duration_s:
            # Never more in flight than paho's window: beyond it paho queues messages and
            # looks through that queue on every acknowledgement (slower the more it holds).
            due = min(int(elapsed * rate) - feed.sent, INFLIGHT - (feed.sent - acked))
            for _ in range(max(0, due)):
                topic, body = feed.next()
                # The cloud's clock first, so that no reading arrives "from the future".
                newest.value = feed.newest_ms
                publisher.publish(topic, body, qos=1)
            sent.value = acked
            time.sleep(0.01)
        deadline = time.monotonic() + 120
        while acked < feed.sent and time.monotonic() < deadline:
            sent.value = acked
            time.sleep(0.05)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        sent.value = acked


def run_soak(minutes: float, devices: int, rows: int, rate: float | None) -> dict[str, Any]:
    import multiprocessing as mp

    from cloud.config import load_settings
    from cloud.service import CloudService
    from forewarn.bench.ingest import run_ingest_bench
    from forewarn.broker import MosquittoProcess

    measured: float | None = None
    if rate is None:
        measured = float(run_ingest_bench(messages=5000, rows=rows, repeats=1)["msgs_per_s"])
        rate = measured / 2
    duration_s = minutes * 60.0
    shape = (devices, rows, time.time_ns() // 1_000_000 - 20 * 86_400_000)
    ctx = mp.get_context("spawn")  # a process of its own: devices are not in the cloud's GIL
    sent = ctx.Value("q", 0)
    newest = ctx.Value("q", shape[2])
    with tempfile.TemporaryDirectory(prefix="forewarn-soak-") as tmp:
        broker = MosquittoProcess(data_dir=Path(tmp) / "broker")
        broker.start()
        service = CloudService(
            load_settings(data_dir=Path(tmp) / "cloud", mqtt_url=broker.url),
            clock_ms=lambda: int(newest.value),
        )
        service.start()
        publisher = ctx.Process(
            target=_publish,
            args=(broker.host, broker.port, shape, rate, duration_s, sent, newest),
            name="forewarn-soak-publisher",
            daemon=True,
        )
        samples: list[tuple[float, int, int, int]] = []  # (t, cloud KiB, broker KiB, backlog)
        stop = threading.Event()
        broker_pid = broker.pid
        me = os.getpid()

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(SAMPLE_EVERY_S):
                skip = {broker_pid, publisher.pid}
                cloud_kib = _rss_kib(me) + sum(_rss_kib(c) for c in _children(me) if c not in skip)
                backlog = int(sent.value) - int(service.pipeline.counters.messages)
                samples.append(
                    (time.monotonic() - t0, cloud_kib, _rss_kib(broker_pid or 0), backlog)
                )

        publisher.start()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        try:
            publisher.join(duration_s + 240)  # the pace, the last acknowledgements, start-up
            if publisher.exitcode != 0:
                raise RuntimeError(f"the soak publisher failed (exit code {publisher.exitcode})")
            ended = time.monotonic()
            deadline = ended + 120
            while service.pipeline.counters.messages < sent.value and time.monotonic() < deadline:
                time.sleep(0.05)
            drained_s = time.monotonic() - ended
            duration_s = ended - started
        finally:
            stop.set()
            sampler.join(timeout=10)
            if publisher.is_alive():
                publisher.kill()
            stats = service.stats()
            service.stop()
            broker.close()
    return _figures(samples, int(sent.value), duration_s, rate, measured, drained_s, stats)


def _figures(
    samples: list[tuple[float, int, int, int]],
    sent: int,
    duration_s: float,
    rate: float,
    measured: float | None,
    drained_s: float,
    stats: dict[str, Any],
) -> dict[str, Any]:
    steady = [s for s in samples if s[0] >= WARMUP_SHARE * duration_s] or samples
    first, last = steady[0], steady[-1]

    def growth(a: int, b: int) -> float | None:
        return round(100.0 * (b - a) / a, 1) if a else None

    lag_max = max((s[3] for s in samples), default=0)
    return {
        "minutes": round(duration_s / 60, 2),
        "measured_ingest_msgs_per_s": round(measured) if measured is not None else None,
        "target_msgs_per_s": round(rate),
        "achieved_msgs_per_s": round(sent / duration_s),
        "messages": sent,
        "processed": stats["messages"],
        "readings_stored": stats["readings_stored"],
        "rejected_messages": stats["rejected_messages"],
        "cloud_rss_after_warmup_mib": round(first[1] / 1024, 1),
        "cloud_rss_end_mib": round(last[1] / 1024, 1),
        "cloud_rss_growth_pct": growth(first[1], last[1]),
        "broker_rss_growth_pct": growth(first[2], last[2]),
        "lag_max_messages": lag_max,
        "lag_max_s": round(lag_max / rate, 2),
        "lag_median_messages": sorted(s[3] for s in samples)[len(samples) // 2] if samples else 0,
        "drain_after_end_s": round(drained_s, 2),
        "samples": len(samples),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    return run_soak(args.minutes, args.devices, args.rows, args.rate)
