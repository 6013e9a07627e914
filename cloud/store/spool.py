"""A bounded on-disk spool of payloads that failed to send: one file per payload, oldest first."""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cloud.errors import ConfigError

SUFFIX = ".lp"
REJECTED_SUFFIX = ".rejected"  # refused by the server as malformed; kept for a human, not resent
_PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    files: int
    bytes: int
    rejected_files: int


class Spool:
    """Files ``<time_ns>-<n>.lp`` under ``directory``, at most ``max_bytes`` in total.

    Each file appears whole (written under another name, then renamed), so a reader never sees
    a partial payload. When the spool is full, new payloads are refused: the caller counts them
    as lost rather than dropping older ones it has already reported as kept.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ConfigError(f"spool size limit must be positive, got {max_bytes} bytes")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._counter = itertools.count()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for partial in self.directory.glob(f"*{_PARTIAL_SUFFIX}"):
                partial.unlink()
            self._bytes = sum(path.stat().st_size for path in self.files())
        except OSError as exc:
            raise ConfigError(
                f"spool directory {self.directory} is not usable ({exc}); "
                "point it at a writable directory"
            ) from exc

    def add(self, payload: bytes) -> Path | None:
        """Keep ``payload``; ``None`` if the spool is full. ``OSError`` if the disk refused."""
        with self._lock:
            if self._bytes + len(payload) > self.max_bytes:
                return None
            name = f"{time.time_ns():020d}-{next(self._counter):06d}"
            partial = self.directory / f"{name}{_PARTIAL_SUFFIX}"
            final = self.directory / f"{name}{SUFFIX}"
            try:
                with partial.open("wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                partial.rename(final)
            except OSError:
                partial.unlink(missing_ok=True)
                raise
            self._bytes += len(payload)
            return final

    def files(self) -> list[Path]:
        """Spooled payload files, oldest first."""
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def remove(self, path: Path) -> None:
        with self._lock:
            size = path.stat().st_size
            path.unlink()
            self._bytes -= size

    def reject(self, path: Path) -> Path:
        """Set a payload aside that must not be resent; it no longer counts against the limit."""
        with self._lock:
            size = path.stat().st_size
            target = path.with_suffix(REJECTED_SUFFIX)
            path.rename(target)
            self._bytes -= size
            return target

    def status(self) -> SpoolStatus:
        with self._lock:
            return SpoolStatus(
                files=len(self.files()),
                bytes=self._bytes,
                rejected_files=len(list(self.directory.glob(f"*{REJECTED_SUFFIX}"))),
            )
