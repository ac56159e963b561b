"""console.prefork: the refresh process forked as the console starts, for the
commands that open the TUI only."""

from __future__ import annotations

import pytest

from console import prefork


@pytest.mark.parametrize("argv", [
    [], ["watch"], ["watch", "--config", "c.yaml"], ["watch", "--viewer"], ["drill", "bad-deploy"],
    ["drill", "--speed", "2", "bad-deploy"], ["drill", "--scenario-file", "s.yaml"],
])
def test_the_commands_that_open_the_tui_want_it(argv: list[str]) -> None:
    assert prefork.wanted(argv)


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], ["watch", "--help"], ["watch", "-h"], ["drill", "--list"], ["drill", "--serve-only"],
    ["drill", "--check", "s.yaml"], ["drill", "--check=s.yaml"], ["status", "--json"], ["check-config", "c.yaml"],
    ["rollback", "svc"], ["drill-ctl", "pause"], ["export", "--config", "watch"],
])
def test_other_commands_do_not(argv: list[str]) -> None:
    assert not prefork.wanted(argv)


def test_nothing_to_adopt_when_nothing_was_started() -> None:
    assert prefork.adopt() is None
    prefork.discard()  # nothing to let go: does nothing
