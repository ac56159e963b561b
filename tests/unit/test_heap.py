"""console/heap.py: a console process keeps its threads' allocations in
ARENAS malloc arenas (glibc), where each thread used to get its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent("""
    import ctypes, os, sys, tempfile, threading
    from console import heap
    if sys.argv[1] == "limit":
        assert heap.limit_arenas()
    start = threading.Barrier(8)
    def work():
        start.wait()  # all eight allocate at once, so each would want an arena
        blocks = [bytearray(2048) for _ in range(2000)]
        del blocks
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    path = tempfile.mktemp()
    out = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(out))
    libc.fclose(ctypes.c_void_p(out))
    text = open(path).read(); os.unlink(path)
    print(text.count("<heap nr="))
""")


def _arenas(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc arenas are glibc's")
def test_threads_share_at_most_arenas_malloc_arenas() -> None:
    from console.heap import ARENAS

    assert _arenas("limit") <= ARENAS
    assert _arenas("default") > ARENAS  # without it, the eight threads spread out


GIVE_BACK = textwrap.dedent("""
    from console import heap
    def rss():
        return int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1])
    # A burst of mid-sized blocks, then every other one freed with a few kept
    # between them (the history's arrays among longer-lived blocks): the heap
    # cannot shrink from its top, and its free pages stay resident.
    blocks = [bytearray(2000) for _ in range(20000)]
    kept = blocks[::50]
    del blocks
    before = rss()
    assert heap.give_back()
    print(before - rss())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_give_back_returns_the_free_pages_of_a_burst() -> None:
    result = subprocess.run([sys.executable, "-c", GIVE_BACK], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 20_000  # KiB: most of the 40 MB burst
