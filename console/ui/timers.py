"""A fix to Textual's interval timers (textual 8.2.8, the pinned version).

After a tick that overran its slot, `Timer._run` skips to the slot after the
next one: with start 0, interval 1 and a tick that ends at 2.5, the next tick
comes at 4, not 3. The screen repaints on such a timer (every 1/60 s when
something changed), so after a frame longer than its slot (a refresh of a few
hundred services repaints most of the screen) a key's frame waited up to two
slots, 33 ms, rather than one. Measured at 500 services, a key pressed as a
refresh was painted waited 13-29 ms for its frame after the cursor had moved.

A second fix, for a timer that is paused past its slot (the screen's frame
timer is paused whenever nothing needs painting, and resumed by the next
change): it ticks as it is resumed, as in Textual, and its slots then count
from that tick (`rebased_start`), so the next one is an interval later; and
when it is paused as a tick overran its slot, it ticks as it is resumed too,
rather than at the next slot. In Textual the slots keep counting from when
the timer started: after a frame resumed off that grid, or one that overran,
the next slot could be up to an interval away however long ago the last frame
began, so a key pressed as a refresh's frame ended waited for its own frame
up to 17 ms more, measured at 500 services (issue 17). The frame rate is
still capped: a tick comes at least an interval after the one before.

`install()` replaces `Timer._run` with the same loop with both fixes.
Everything else about the timers is unchanged.
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


def rebased_start(now: float, interval: float, count: int) -> float:
    """The start that puts slot `count` at `now`: slot `count` + 1 is then one `interval` later."""
    return now - count * interval


async def _run(self: Timer) -> None:
    """Textual's Timer._run, with the skip going to the next slot and the slots
    of a timer resumed past its slot counted from the resumed tick."""
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
            if self._active.is_set():
                continue
            # Paused, its slot passed already (a frame that overran): no slot to sleep to, it ticks as it is resumed.
            next_timer = now
        now = _time.get_time()
        wait_time = max(0, next_timer - now)
        await _time.sleep(wait_time)
        count += 1
        if not self._active.is_set():  # paused: ticks as it is resumed, the next slot an interval later
            await self._active.wait()
            start = rebased_start(_time.get_time(), _interval, count)
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
