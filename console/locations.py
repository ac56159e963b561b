"""Where the console keeps its files, following the XDG base directories.

Nothing here creates a directory: callers that write call `ensure_parent()`
first, so merely reading the config or listing incidents leaves no trace in
the user's home.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "rollback-console"
CONFIG_ENV = "ROLLBACK_CONSOLE_CONFIG"


def _xdg(variable: str, fallback: str) -> Path:
    # The XDG spec says relative values are invalid and must be ignored.
    value = os.environ.get(variable, "")
    base = Path(value) if value and os.path.isabs(value) else Path.home() / fallback
    return base / APP_NAME


def config_dir() -> Path:
    """$XDG_CONFIG_HOME/rollback-console, by default ~/.config/rollback-console."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def state_dir() -> Path:
    """$XDG_STATE_HOME/rollback-console, by default ~/.local/state/rollback-console."""
    return _xdg("XDG_STATE_HOME", ".local/state")


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/rollback-console, by default ~/.cache/rollback-console."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def default_config_path() -> Path:
    """The config file: $ROLLBACK_CONSOLE_CONFIG if set, else config_dir()/config.yaml."""
    override = os.environ.get(CONFIG_ENV, "")
    return Path(override).expanduser() if override else config_dir() / "config.yaml"


def default_store_path() -> Path:
    """The incident database: state_dir()/incidents.db."""
    return state_dir() / "incidents.db"


def ensure_parent(path: Path) -> Path:
    """Create the directory that will hold `path` (private to the user) and return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
