"""Shared test fixtures: isolation from the developer's home, components
that must exist in CI, and a live drill world."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip locally when a component is missing; in CI a missing component fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed (scripts/system-deps.sh installs it)")
    return path  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """No config discovery from, and no files written to, the developer's home."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.delenv("ROLLBACK_CONSOLE_CONFIG", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
