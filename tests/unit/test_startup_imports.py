"""What the console's own process loads before its first frame (issue 17):
each module left out here was measured on the first frame's path, in both of
the console's processes where the refresh process inherits it."""

from __future__ import annotations

import subprocess
import sys

import pytest

UI_PATH = "console.cli, console.session, console.ui.app, console.refresher, console.sources"


@pytest.mark.parametrize("module, why", [
    # pydantic's import and the config's 29 models were 70 ms and 13 MB (console/schema.py checks the config).
    ("pydantic", "the config is checked by console.schema"),
    # http.client and the email package: 10 ms, for a response class the Kubernetes client needs only when used.
    ("http.client", "console.platforms.bounded makes its response class on install"),
    ("email", "only http.client brought it"),
    # The Kubernetes client: loaded by the refresh process, or by an action that needs it.
    ("kubernetes", "the refresh process reads the clusters"),
    ("aiohttp", "the refresh process makes the cycle's HTTP requests"),
])
def test_not_loaded_before_the_first_frame(module, why):
    code = f"import sys, {UI_PATH}; print({module!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False", f"{module} is imported before the first frame ({why})"
