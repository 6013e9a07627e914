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
import contextlib
import os
import platform
import socket
import struct
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


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


class RawPublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher: packets written straight to the socket.

    A load generator, not a device: paho spends tens of microseconds of Python per message,
    which on a small machine takes the cores the cloud under test needs. This one encodes a
    PUBLISH in a few microseconds, writes many per system call, and counts the broker's PUBACKs
    on a thread of its own. It keeps at most ``inflight`` messages unacknowledged (the caller
    asks :meth:`room`), so packet ids (1–65535) are never reused while in flight.
    """

    def __init__(self, host: str, port: int, client_id: str, inflight: int = 1000) -> None:
        if not 0 < inflight < 65535:
            raise ValueError(f"inflight must be between 1 and 65534, got {inflight}")
        self.inflight = inflight
        self.sent = 0
        self.acked = 0
        self.error: str | None = None
        self._sock = socket.create_connection((host, port), timeout=10)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # CONNECT: protocol "MQTT" level 4, clean session, no keep-alive (the broker never
        # expects a PINGREQ), client id.
        body = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + _utf8(client_id)
        self._sock.sendall(bytes([0x10]) + _remaining_length(len(body)) + body)
        connack = self._read_exact(4)
        if connack[0] != 0x20 or connack[3] != 0:
            self._sock.close()
            raise ConnectionError(f"the broker refused the connection: CONNACK {connack.hex()}")
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_acks, name="soak-pubacks", daemon=True)
        self._reader.start()

    def _read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            buf += chunk
        return buf

    def _read_acks(self) -> None:
        buf = b""
        try:
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the broker closed the connection")
                buf += chunk
                n = len(buf) // 4  # PUBACKs: 0x40 0x02 and a packet id, 4 bytes each
                if buf[0 : 4 * n : 4] != b"\x40" * n or buf[1 : 4 * n : 4] != b"\x02" * n:
                    raise ConnectionError(f"unexpected packet from the broker: {buf[:16].hex()}")
                self.acked += n
                buf = buf[4 * n :]
        except OSError as exc:  # ConnectionError included
            self.error = str(exc) or type(exc).__name__

    def room(self) -> int:
        """How many messages may be published before the next acknowledgement."""
        return self.inflight - (self.sent - self.acked)

    def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish each ``(topic, payload)`` with QoS 1, in order, in one write."""
        if len(messages) > self.room():
            raise ValueError(f"{len(messages)} messages exceed the room of {self.room()}")
        if self.error is not None:
            raise ConnectionError(self.error)
        out = bytearray()
        for topic, payload in messages:
            self.sent += 1
            body = _utf8(topic) + struct.pack("!H", self.sent % 65535 + 1)
            out += b"\x32" + _remaining_length(len(body) + len(payload)) + body + payload
        self._sock.sendall(out)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._reader.join(timeout=5)


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

    At most :data:`INFLIGHT` messages are unacknowledged, so if the broker cannot keep the
    pace the achieved rate says so; only acknowledged messages count, and the publisher waits
    for the last acknowledgement before it disconnects, so the soak never counts a message the
    cloud could not have received.
    """
    feed = _Feed(*shape)
    newest.value = feed.newest_ms
    publisher = RawPublisher(host, port, "soak-publisher", inflight=INFLIGHT)
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < duration_s:
            due = min(int(elapsed * rate) - feed.sent, publisher.room())
            if due > 0:
                chunk = [feed.next() for _ in range(due)]
                # The cloud's clock first, so that no reading arrives "from the future".
                newest.value = feed.newest_ms
                publisher.publish_many(chunk)
            sent.value = publisher.acked
            time.sleep(0.005)
        deadline = time.monotonic() + 120
        while publisher.acked < publisher.sent and time.monotonic() < deadline:
            if publisher.error is not None:
                raise ConnectionError(publisher.error)
            sent.value = publisher.acked
            time.sleep(0.05)
    finally:
        publisher.close()
        sent.value = publisher.acked


def run_soak(minutes: float, devices: int, rows: int, rate: float | None) -> dict[str, Any]:
    import multiprocessing as mp

    from cloud.config import load_settings
    from cloud.service import CloudService
    from forewarn.bench.ingest import run_ingest_bench
    from forewarn.broker import MosquittoProcess

    measured: float | None = None
    if rate is None:
        # What `forewarn bench ingest` reports: the best of three 20,000-message drains (one
        # short drain varied from 8.5 k to 14 k msgs/s on the same machine).
        measured = float(run_ingest_bench(rows=rows)["msgs_per_s"])
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
        "broker_rss_after_warmup_mib": round(first[2] / 1024, 1),
        "broker_rss_end_mib": round(last[2] / 1024, 1),
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
