"""Start-up runs with the garbage collector paused (issue 17, console/cli.py):
importing console.cli pauses it; a command resumes it as it starts."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import gc
import console.cli as cli
from click.testing import CliRunner
print(gc.isenabled())
CliRunner().invoke(cli.cli, ["check-config", "missing.yaml"])
print(gc.isenabled())
"""


def test_the_collector_waits_from_the_cli_import_until_a_command_starts(tmp_path) -> None:
    # A fresh interpreter: this one imported console.cli long ago.
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
