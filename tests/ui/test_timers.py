"""console/ui/timers.py: after a tick that overran its slot, a Textual timer
(the screen's frame timer among them) ticks at the next slot, not the one
after; a timer resumed past its slot ticks next an interval after that tick."""

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


def _virtual_clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Textual's clock made virtual: `clock["now"]` is the time, and a sleep
    moves it on at once (then lets the other tasks run)."""
    clock = {"now": 0.0}

    async def sleep(seconds: float) -> None:
        clock["now"] += max(0.0, seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(_time, "get_time", lambda: clock["now"])
    monkeypatch.setattr(_time, "sleep", sleep)
    monkeypatch.setattr("textual.timer.sleep", sleep)
    return clock


async def _ticks(monkeypatch: pytest.MonkeyPatch, run) -> list[float]:
    """When a timer of interval 1 ticks, on a virtual clock, with its first
    tick taking 1.5 (a frame that overran its slot)."""
    clock = _virtual_clock(monkeypatch)
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


async def _resumed_ticks(monkeypatch: pytest.MonkeyPatch, run) -> list[float]:
    """When a timer of interval 1 ticks, on a virtual clock, when each tick
    pauses it (as the screen's frame timer does) and something resumes it:
    first at 2.4 (off its grid of slots), then right after that tick."""
    clock = _virtual_clock(monkeypatch)
    ticks: list[float] = []

    class Target:
        pass

    def tick() -> None:
        ticks.append(clock["now"])
        timer.pause()

    timer = Timer(Target(), 1.0, callback=tick, repeat=2)  # three ticks
    timer._active.set()

    async def resume_it() -> None:
        while not ticks:
            await asyncio.sleep(0)
        while clock["now"] < 2.0:  # the timer sleeps to its next slot...
            await asyncio.sleep(0)
        for _ in range(10):  # ...and waits there, paused
            await asyncio.sleep(0)
        clock["now"] = 2.4
        timer.resume()
        while len(ticks) < 2:
            await asyncio.sleep(0)
        timer.resume()

    token = active_app.set(_App())  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(asyncio.gather(run(timer), resume_it()), 5)
    finally:
        active_app.reset(token)
    return ticks


async def test_a_timer_resumed_past_its_slot_ticks_again_an_interval_later(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = await _resumed_ticks(monkeypatch, timers._run)
    assert ticks[:3] == [1.0, 2.4, 3.4]


async def test_textuals_own_loop_keeps_the_slots_of_the_paused_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the second fix is installed: the tick after the resumed one comes at
    the old grid's slot (3.0 here; after a frame that overran, up to two intervals later)."""
    ticks = await _resumed_ticks(monkeypatch, timers.TEXTUALS_RUN)
    assert ticks[:3] == [1.0, 2.4, 3.0]


def test_a_rebased_start_puts_the_resumed_slot_now() -> None:
    assert timers.rebased_start(2.4, 1.0, 2) == pytest.approx(0.4)


async def test_a_timer_paused_as_its_tick_overran_ticks_as_it_is_resumed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The screen's frame timer after a long frame: the tick (from 1.0 to 2.3)
    paused it, a key resumes it at 2.5: it ticks then, not at the next slot (3.0)."""
    clock = _virtual_clock(monkeypatch)
    ticks: list[float] = []

    class Target:
        pass

    def tick() -> None:
        ticks.append(clock["now"])
        timer.pause()
        if len(ticks) == 1:
            clock["now"] += 1.3

    timer = Timer(Target(), 1.0, callback=tick, repeat=1)  # two ticks
    timer._active.set()

    async def resume_it() -> None:
        while not ticks:
            await asyncio.sleep(0)
        for _ in range(10):
            await asyncio.sleep(0)
        clock["now"] = 2.5
        timer.resume()

    token = active_app.set(_App())  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(asyncio.gather(timers._run(timer), resume_it()), 5)
    finally:
        active_app.reset(token)
    assert ticks == [1.0, 2.5]
