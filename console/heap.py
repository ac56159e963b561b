"""How the console's processes use the C allocator (issue 17, peak RSS).

glibc gives each thread that allocates its own malloc arena, up to eight per
CPU. The refresh cycle runs platform calls on up to `max_concurrency` threads
and every Textual thread worker is a new thread, so a few hundred services'
responses end up spread over a dozen arenas. Memory freed in one arena is not
reused by the others and is rarely given back, and the console's RSS grew
with every busy minute (by 40-60 MB in ten minutes at 500 services on a loaded
machine). Two arenas keep the threads' contention low and the memory in one
place. Python's own small objects live in its own allocator and are not
affected.

Giving memory back: a burst of mid-sized blocks (the sparklines' history as
it arrives: a few thousand arrays, or the range queries' answers) leaves
holes in the C heap when it is freed, which later blocks of other sizes do
not fill, and the pages stay resident (3 MB of the console's process at 500
services). `give_back` returns the free pages to the system after such a
burst.
"""

from __future__ import annotations

import functools
import sys

ARENAS = 2
"""The most malloc arenas a console process uses (see the module's docstring)."""

_M_ARENA_MAX = -8  # glibc's malloc.h

SPARKLINE_BURST = 200_000
"""Samples arriving at once after which the console's process gives memory back (see the docstring)."""


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap this process's malloc arenas (before its threads start: a thread keeps
    the arena it got). True when the C library took it; elsewhere than glibc
    there is nothing to cap and it returns False. Children forked later inherit it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


@functools.cache
def _libc():
    import ctypes

    return ctypes.CDLL(None)


def give_back() -> bool:
    """Return the C allocator's free pages to the system (glibc's malloc_trim:
    0.1-0.3 ms on the console's heaps). False where there is no such call."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = _libc().malloc_trim
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(trim(0))
