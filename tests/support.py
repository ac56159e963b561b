"""Helpers every test module shares (pyproject puts tests/ on the path).

A test that needs a component the machine lacks skips locally with the
reason and fails in CI (CI=true): a skipped integration test in CI is a red
build.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[1]
# shared/ lies beside the checkout, for developers and in CI alike.
RUNBOOK = REPO.parent / "shared" / "seed" / "rollback-procedures.md"


def require(condition: bool, reason: str) -> None:
    """Skip locally when a component is missing; in CI a missing component fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)  # locally only: under CI the line above fails instead


def require_binary(name: str, package: str | None = None) -> str:
    """The path of `name`, or skip/fail naming the Debian package that provides it."""
    path = shutil.which(name)
    hint = f" (Debian package {package}; scripts/system-deps.sh installs it)" if package else " (scripts/system-deps.sh installs it)"
    require(path is not None, f"{name} is not installed{hint}")
    return path  # type: ignore[return-value]


def runbook_text() -> str:
    """The runbook the console implements (skip/fail when shared/ is absent)."""
    require(RUNBOOK.exists(), f"the runbook {RUNBOOK} is not beside the checkout")
    return RUNBOOK.read_text(encoding="utf-8")
