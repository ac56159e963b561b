"""Start-up runs with the garbage collector paused (issue 17, console/launch.py):
the entry point pauses it; a command resumes it as it starts; importing
console.cli alone leaves it as it was."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import gc, sys
from console import launch
import console.cli as cli
print(gc.isenabled())
launch.pause_collector()
print(gc.isenabled())
sys.argv = ["rollback-console", "check-config", "missing.yaml"]
try:
    cli.main()
except SystemExit:
    pass
print(gc.isenabled())
"""


def test_the_collector_waits_from_the_entry_point_until_a_command_starts(tmp_path) -> None:
    # A fresh interpreter, whose collector nothing has touched yet.
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.stdout.split() == ["True", "False", "True"], out.stderr
