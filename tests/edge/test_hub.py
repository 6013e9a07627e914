"""The hub thread: queued calls, timers, and survival of a failing callback."""

from __future__ import annotations

import threading

from edge.hub import Hub


def test_calls_run_in_order_timers_when_due_and_a_failure_stops_nothing() -> None:
    hub = Hub()
    order: list[str] = []
    done = threading.Event()
    on_hub: list[bool] = []

    def failing() -> None:
        order.append("failing")
        raise RuntimeError("one agent's bug")

    def late() -> None:
        order.append("late")
        on_hub.append(hub.on_hub_thread)
        done.set()

    hub.call_later(0.10, late)
    hub.call_soon(failing)
    hub.call_later(0.05, lambda: order.append("middle"))
    hub.call_soon(lambda: order.append("soon"))
    assert done.wait(5)
    assert order == ["failing", "soon", "middle", "late"]
    assert on_hub == [True]
    assert not hub.on_hub_thread
