"""A fix to Textual's interval timers (textual 8.2.8, the pinned version).

After a tick that overran its slot, `Timer._run` skips to the slot after the
next one: with start 0, interval 1 and a tick that ends at 2.5, the next tick
comes at 4, not 3. The screen repaints on such a timer (every 1/60 s when
something changed), so after a frame longer than its slot (a refresh of a few
hundred services repaints most of the screen) a key's frame waited up to two
slots, 33 ms, rather than one. Measured at 500 services, a key pressed as a
refresh was painted waited 13-29 ms for its frame after the cursor had moved.

`install()` replaces `Timer._run` with the same loop whose skip lands on the
next slot (`next_slot`). Everything else about the timers is unchanged.
"""

from __future__ import annotations

import math

from textual import _time
from textual.timer import EventTargetGone, Timer

TEXTUALS_RUN = Timer._run
"""Textual's own loop, as imported (the tests check it still needs the fix)."""


def next_slot(start: float, interval: float, now: float) -> int:
    """The count of the first tick due after `now`, for a timer started at
    `start` ticking every `interval` (tick `n` is due at start + n × interval)."""
    return max(1, math.floor((now - start) / interval) + 1)


async def _run(self: Timer) -> None:
    """Textual's Timer._run, with the skip going to the next slot."""
    count = 0
    _repeat = self._repeat
    _interval = self._interval
    self._active  # Force instantiation in same thread
    await self._active.wait()
    start = _time.get_time()

    while _repeat is None or count <= _repeat:
        next_timer = start + ((count + 1) * _interval)
        now = _time.get_time()
        if self._skip and next_timer < now:
            count = next_slot(start, _interval, now) - 1
            continue
        now = _time.get_time()
        wait_time = max(0, next_timer - now)
        await _time.sleep(wait_time)
        count += 1
        await self._active.wait()
        if self._reset:
            start = _time.get_time()
            count = 0
            self._reset = False
            continue
        try:
            await self._tick(next_timer=next_timer, count=count)
        except EventTargetGone:
            break


def install() -> None:
    """Use the fixed loop for every Textual timer (idempotent)."""
    Timer._run = _run  # type: ignore[method-assign]
