"""XDG locations, and that looking them up writes nothing."""

from __future__ import annotations

from pathlib import Path

from console import locations


def test_xdg_variables_are_honoured(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("ROLLBACK_CONSOLE_CONFIG", raising=False)
    assert locations.config_dir() == tmp_path / "cfg" / "rollback-console"
    assert locations.default_config_path() == tmp_path / "cfg" / "rollback-console" / "config.yaml"
    assert locations.default_store_path() == tmp_path / "state" / "rollback-console" / "incidents.db"
    # Nothing is created by asking.
    assert not (tmp_path / "cfg").exists() and not (tmp_path / "state").exists()


def test_defaults_under_home_and_relative_xdg_values_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")
    assert locations.config_dir() == tmp_path / ".config" / "rollback-console"
    assert locations.state_dir() == tmp_path / ".local" / "state" / "rollback-console"


def test_config_env_var_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("ROLLBACK_CONSOLE_CONFIG", str(tmp_path / "mine.yaml"))
    assert locations.default_config_path() == tmp_path / "mine.yaml"


def test_ensure_parent_creates_a_private_directory(tmp_path):
    target = tmp_path / "a" / "b" / "incidents.db"
    assert locations.ensure_parent(target) == target
    assert target.parent.is_dir()
    assert (target.parent.stat().st_mode & 0o777) == 0o700
    assert not target.exists()
    assert isinstance(target, Path)
