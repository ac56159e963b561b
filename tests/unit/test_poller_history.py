"""The sparkline histories a snapshot carries (console/signals/poller.py): a
snapshot's tuple is the history at that cycle, shared with the previous
snapshot while the history did not change (issue 17, peak RSS)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from console.model import Point
from console.signals.poller import ERROR_RATE, LATENCY, ServiceSource, _append, _extend, _frozen
from console.signals.prometheus import Series

T0 = datetime(2024, 1, 17, 14, 43, tzinfo=timezone.utc)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_an_unchanged_history_is_handed_out_once_and_a_changed_one_afresh() -> None:
    source = ServiceSource("svc", None)
    for i in range(3):
        _append(source.error_history, Point(_at(15 * i), 0.001 * i))
    first = _frozen(source, ERROR_RATE, source.error_history)
    assert first == tuple(source.error_history)
    assert _frozen(source, ERROR_RATE, source.error_history) is first  # quiet cycle: shared

    _append(source.error_history, Point(_at(45), 0.08))  # a new sample
    second = _frozen(source, ERROR_RATE, source.error_history)
    assert [p.value for p in second] == [0.0, 0.001, 0.002, 0.08]
    assert [p.value for p in first] == [0.0, 0.001, 0.002]  # the older snapshot keeps what it showed

    source.error_history.popleft()  # the oldest point leaves the window ...
    _append(source.error_history, Point(_at(60), 0.09))  # ... as a new one comes: same length
    third = _frozen(source, ERROR_RATE, source.error_history)
    assert [p.at for p in third] == [_at(15), _at(30), _at(45), _at(60)]

    source.error_history.clear()
    assert _frozen(source, ERROR_RATE, source.error_history) == ()


def test_histories_of_each_signal_are_kept_apart() -> None:
    source = ServiceSource("svc", None)
    _append(source.error_history, Point(_at(0), 0.01))
    _append(source.latency_history, Point(_at(0), 250.0))
    assert _frozen(source, ERROR_RATE, source.error_history) == (Point(_at(0), 0.01),)
    assert _frozen(source, LATENCY, source.latency_history) == (Point(_at(0), 250.0),)


def test_a_history_merged_from_a_range_query_is_handed_out_afresh() -> None:
    source = ServiceSource("svc", None)
    _append(source.error_history, Point(_at(60), 0.02))
    before = _frozen(source, ERROR_RATE, source.error_history)
    # The start-up range query arrives late: older points go in front, the newest stays.
    _extend(source.error_history, [Series({"service": "svc"}, [Point(_at(0), 0.01), Point(_at(30), 0.015)])], 1.0)
    after = _frozen(source, ERROR_RATE, source.error_history)
    assert after is not before
    assert [(p.at, p.value) for p in after] == [(_at(0), 0.01), (_at(30), 0.015), (_at(60), 0.02)]
