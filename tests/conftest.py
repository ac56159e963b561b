"""Shared test fixtures: isolation from the developer's home, components
that must exist in CI, and a live drill world."""

from __future__ import annotations

import pytest

# The fixture modules of tests/integration (on the pythonpath, see pyproject.toml),
# registered once for the whole run: a session-scoped fixture (the Docker world,
# PostgreSQL) imported into several test modules would start once per module.
pytest_plugins = ["conftest_adapters", "docker_fixture", "postgres_fixture", "fault_server"]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """No config discovery from, and no files written to, the developer's home."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.delenv("ROLLBACK_CONSOLE_CONFIG", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
