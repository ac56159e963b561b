"""The database's command runner: bounded in time and in the output it keeps,
whatever the command does."""

from __future__ import annotations

import sys
import time

from console import commands
from console.database import run_command


def test_a_command_printing_a_lot_keeps_only_the_cap(monkeypatch):
    monkeypatch.setattr(commands, "MAX_OUTPUT_BYTES", 1000)
    result = run_command([sys.executable, "-c", "import sys; sys.stdout.write('x' * 5_000_000)"], timeout=60)
    assert result.returncode == 0 and result.error is None
    assert result.stdout.startswith("x" * 1000)
    assert result.stdout.endswith("[4999000 more bytes of output not kept]")


def test_a_hanging_command_is_stopped_at_its_timeout_with_a_sentence():
    started = time.monotonic()
    result = run_command([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(600)"], timeout=1)
    assert time.monotonic() - started < 30
    assert result.error.endswith("did not finish within 1 s and was stopped; check the database and try again.")
    assert result.stdout.strip() == "started"


def test_a_background_child_holding_the_pipes_does_not_hold_the_console(monkeypatch):
    monkeypatch.setattr(commands, "OUTPUT_GRACE_SECONDS", 0.5)
    # The child escapes the process group (its own session) and keeps stdout open.
    script = (
        "import os, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(15)'], start_new_session=True)\n"
        "print('done', flush=True)\n"
    )
    started = time.monotonic()
    result = run_command([sys.executable, "-c", script], timeout=30)
    assert time.monotonic() - started < 20
    assert result.returncode == 0 and "done" in result.stdout
