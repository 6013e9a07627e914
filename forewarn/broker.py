"""A private Mosquitto broker run as a child process on a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from cloud.errors import ConfigError

INSTALL_HINT = (
    "the 'mosquitto' broker binary was not found on PATH. Install it with "
    "'sudo apt-get install mosquitto' (Debian/Ubuntu) or 'brew install mosquitto' (macOS), "
    "or point forewarn at an existing broker with FOREWARN_MQTT_URL."
)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def broker_config(port: int, data_dir: Path, host: str = "127.0.0.1") -> str:
    """Mosquitto configuration for a private broker.

    Mosquitto's defaults drop messages for a slow subscriber once 1000 are queued (QoS 0
    included) and cap in-flight messages; a broker that feeds ingest must never do that, so the
    queue limits are lifted and the byte limit is what bounds memory instead.
    """
    # Started as root, Mosquitto would switch to the 'mosquitto' user, which cannot write a
    # private data directory; then sessions and queued messages would not survive a restart.
    run_as = ["user root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return "\n".join(
        [
            *run_as,
            f"listener {port} {host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {data_dir}/",
            "autosave_interval 30",
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "max_inflight_messages 0",
            "queue_qos0_messages true",
            "max_packet_size 1048576",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "",
        ]
    )


class MosquittoProcess:
    """Start, stop and restart a Mosquitto child process.

    >>> with MosquittoProcess() as broker:  # doctest: +SKIP
    ...     print(broker.port)
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        extra_config: str = "",
        host: str = "127.0.0.1",
        binary: str | None = None,
        config: str | None = None,
    ) -> None:
        """``config`` replaces the private broker's configuration (e.g. one made by
        ``forewarn provision``); it must listen on ``port``."""
        if binary is None:
            binary = shutil.which("mosquitto") or next(
                (
                    p
                    for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                    if Path(p).exists()
                ),
                None,
            )
        if binary is None or not Path(binary).is_file():
            raise ConfigError(INSTALL_HINT)
        self.binary = binary
        self.host = host
        self.port = port or free_port(host)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="forewarn-mosquitto-")
            data_dir = Path(self._tmp.name)
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.data_dir / "mosquitto.conf"
        if config is None:
            config = broker_config(self.port, self.data_dir, host) + extra_config
        self.config_path.write_text(config)
        self.log_path = self.data_dir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(  # noqa: S603 - fixed binary, our own config file
            [self.binary, "-c", str(self.config_path)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ConfigError(
                    f"mosquitto exited at start (code {self._proc.returncode}): "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise ConfigError(f"mosquitto did not listen on {self.host}:{self.port} in {timeout_s} s")

    def stop(self, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
