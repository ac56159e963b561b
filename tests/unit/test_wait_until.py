"""support.wait_until, the synchronous twin of wait_for: it returns what the
condition returned once true, and fails naming what it waited for."""

from __future__ import annotations

import pytest
from support import wait_until


def test_returns_the_first_true_value_of_the_condition() -> None:
    answers = iter([None, [], ["Rollback Complete"], ["later"]])
    assert wait_until(lambda: next(answers), "the message", timeout=5, interval=0) == ["Rollback Complete"]


def test_fails_naming_what_it_waited_for_and_what_was_last_seen() -> None:
    seen: list[int] = []

    def never() -> bool:
        seen.append(len(seen))
        return False

    with pytest.raises(pytest.fail.Exception, match=r"^timed out after 0.01 s waiting for the lease; looked \d+ times$"):
        wait_until(never, lambda: f"the lease; looked {len(seen)} times", timeout=0.01, interval=0.001)
    assert len(seen) > 1  # it polled, not looked once
    with pytest.raises(pytest.fail.Exception, match="waiting for the web server"):
        wait_until(lambda: 0, "the web server", timeout=0, interval=0)


def test_an_assertion_in_the_condition_fails_at_once() -> None:
    calls: list[None] = []

    def exited() -> bool:
        calls.append(None)
        raise AssertionError("the web server exited")

    with pytest.raises(AssertionError, match="the web server exited"):
        wait_until(exited, "the web server", timeout=60)
    assert len(calls) == 1
