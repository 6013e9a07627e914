"""One thread and one selector that drive the sockets and timers of every agent in the process.

A simulation runs hundreds of agents in one process. A network thread per client (paho's
``loop_start``) would mean hundreds of threads, and paho's own loop waits with ``select()``,
which cannot watch file descriptors numbered 1024 or above. The hub waits with the platform's
best selector (epoll on Linux) instead, runs every agent's timers, and ticks every watched
handler once a second (MQTT keepalive).

Everything that touches the selector runs on the hub thread; other threads queue work with
``call_soon``/``call_later``. Handlers must not block for long: they share one thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Final, Protocol

logger = logging.getLogger(__name__)

TICK_S: Final = 1.0


class IoHandler(Protocol):
    """A socket owner driven by the hub (an MQTT link)."""

    def on_readable(self) -> None: ...

    def on_writable(self) -> None: ...

    def on_tick(self) -> None: ...


class Hub:
    """A selector loop on one daemon thread, started on first use."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._calls: deque[Callable[[], None]] = deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._watched: dict[int, IoHandler] = {}  # fd -> owner; hub thread only
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None

    # -- any thread ------------------------------------------------------------------------

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the hub thread, after the calls queued before it."""
        with self._lock:
            self._calls.append(callback)
            self._ensure_thread()
        self._wake()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the hub thread in ``delay_s`` seconds (or a little later)."""
        due_s = time.monotonic() + max(0.0, delay_s)
        with self._lock:
            heapq.heappush(self._timers, (due_s, next(self._order), callback))
            self._ensure_thread()
        self._wake()

    @property
    def on_hub_thread(self) -> bool:
        return threading.current_thread() is self._thread

    # -- hub thread only (queue them with call_soon from elsewhere) ---------------------------

    def watch(self, fd: int, handler: IoHandler) -> None:
        """Start reading ``fd`` for ``handler`` (replacing a stale owner of a reused fd)."""
        if fd in self._watched:
            del self._watched[fd]
            with suppress(KeyError):
                self._selector.unregister(fd)
        self._selector.register(fd, selectors.EVENT_READ, handler)
        self._watched[fd] = handler

    def want_write(self, fd: int, handler: IoHandler, wanted: bool) -> None:
        if self._watched.get(fd) is not handler:
            return  # the socket was closed (and its fd maybe reused) since this was queued
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if wanted else 0)
        try:
            self._selector.modify(fd, events, handler)
        except OSError:
            # Closed under us (its unwatch is queued); the selector dropped it already.
            del self._watched[fd]

    def unwatch(self, fd: int, handler: IoHandler) -> None:
        if self._watched.get(fd) is not handler:
            return
        del self._watched[fd]
        with suppress(KeyError):
            self._selector.unregister(fd)

    # -- the loop ----------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edge-hub", daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        with suppress(BlockingIOError):  # the buffer is full of wake-ups already
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        next_tick_s = time.monotonic() + TICK_S
        while True:
            self._run_due(time.monotonic())
            with self._lock:
                first_timer_s = self._timers[0][0] if self._timers else next_tick_s
            timeout_s = max(0.0, min(first_timer_s, next_tick_s) - time.monotonic())
            for key, mask in self._selector.select(timeout_s):
                handler = key.data
                if handler is None:
                    self._drain_wakeups()
                    continue
                if mask & selectors.EVENT_READ:
                    _guarded(handler.on_readable)
                if mask & selectors.EVENT_WRITE:
                    _guarded(handler.on_writable)
            now_s = time.monotonic()
            if now_s >= next_tick_s:
                next_tick_s = now_s + TICK_S
                for handler in list(self._watched.values()):
                    _guarded(handler.on_tick)

    def _run_due(self, now_s: float) -> None:
        with self._lock:
            due = list(self._calls)
            self._calls.clear()
            while self._timers and self._timers[0][0] <= now_s:
                due.append(heapq.heappop(self._timers)[2])
        for callback in due:
            _guarded(callback)

    def _drain_wakeups(self) -> None:
        with suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass


def _guarded(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # one agent's failure must not stop the hub that serves every agent
        logger.exception("edge hub: a callback failed")


_shared_lock = threading.Lock()
_shared: Hub | None = None


def shared_hub() -> Hub:
    """The process-wide hub."""
    global _shared  # one hub per process, created lazily
    with _shared_lock:
        if _shared is None:
            _shared = Hub()
        return _shared
