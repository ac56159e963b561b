"""console/ui/timers.py: after a tick that overran its slot, a Textual timer
(the screen's frame timer among them) ticks at the next slot, not the one after."""

from __future__ import annotations

import asyncio

import pytest
from textual import _time
from textual._context import active_app
from textual.timer import Timer

from console.ui import timers


def test_the_next_slot_is_the_first_one_after_now() -> None:
    assert timers.next_slot(0.0, 1.0, 2.5) == 3
    assert timers.next_slot(0.0, 1.0, 3.0) == 4  # a tick due exactly now has passed
    assert timers.next_slot(10.0, 0.5, 10.1) == 1


class _App:
    _exit = False
    features: frozenset[str] = frozenset()

    def _handle_exception(self, error: Exception) -> None:
        raise error


async def _ticks(monkeypatch: pytest.MonkeyPatch, run) -> list[float]:
    """When a timer of interval 1 ticks, on a virtual clock, with its first
    tick taking 1.5 (a frame that overran its slot)."""
    clock = {"now": 0.0}

    async def sleep(seconds: float) -> None:
        clock["now"] += max(0.0, seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(_time, "get_time", lambda: clock["now"])
    monkeypatch.setattr(_time, "sleep", sleep)
    monkeypatch.setattr("textual.timer.sleep", sleep)
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(clock["now"])
        if len(ticks) == 1:
            clock["now"] += 1.5

    class Target:
        pass

    target = Target()
    timer = Timer(target, 1.0, callback=tick, repeat=3)
    timer._active.set()
    token = active_app.set(_App())  # type: ignore[arg-type]
    try:
        await run(timer)
    finally:
        active_app.reset(token)
    return ticks


async def test_after_an_overrun_the_timer_ticks_at_the_next_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = await _ticks(monkeypatch, timers._run)
    assert ticks[:3] == [1.0, 3.0, 4.0]  # the first tick ran until 2.5: the next slot is 3


async def test_textuals_own_loop_still_skips_a_slot_too_many(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the fix is installed: if this fails, Textual fixed it and the fix can go."""
    ticks = await _ticks(monkeypatch, timers.TEXTUALS_RUN)
    assert ticks[:2] == [1.0, 4.0]
