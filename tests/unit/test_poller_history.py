"""The sparkline histories a snapshot carries (console/signals/poller.py and
model.Trail): a snapshot's Samples are the history at that cycle, shared with
the previous snapshot while the history did not change (issue 17, peak RSS)."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

from console.model import Metrics, Point, Samples, epoch
from console.signals.poller import ServiceSource, _extend
from console.signals.prometheus import Series

T0 = datetime(2024, 1, 17, 14, 43, tzinfo=timezone.utc)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_an_unchanged_history_is_handed_out_once_and_a_changed_one_afresh() -> None:
    trail = ServiceSource("svc", None).error_history
    for i in range(3):
        trail.append(epoch(_at(15 * i)), 0.001 * i)
    first = trail.samples()
    assert first == (Point(_at(0), 0.0), Point(_at(15), 0.001), Point(_at(30), 0.002))
    assert trail.samples() is first  # quiet cycle: shared

    trail.append(epoch(_at(45)), 0.08)  # a new sample
    trail.append(epoch(_at(45)), 0.5)  # the same sample time again: ignored
    second = trail.samples()
    assert list(second.values) == [0.0, 0.001, 0.002, 0.08]
    assert list(first.values) == [0.0, 0.001, 0.002]  # the older snapshot keeps what it showed

    trail.drop_before(epoch(_at(10)))  # the oldest point leaves the window ...
    trail.append(epoch(_at(60)), 0.09)  # ... as a new one comes: same length
    third = trail.samples()
    assert [p.at for p in third] == [_at(15), _at(30), _at(45), _at(60)]

    trail.drop_before(epoch(_at(3600)))
    assert trail.samples() == () and not trail.samples()


def test_histories_of_each_signal_are_kept_apart() -> None:
    source = ServiceSource("svc", None)
    source.error_history.append(epoch(_at(0)), 0.01)
    source.latency_history.append(epoch(_at(0)), 250.0)
    assert source.error_history.samples() == (Point(_at(0), 0.01),)
    assert source.latency_history.samples() == (Point(_at(0), 250.0),)


def test_a_history_merged_from_a_range_query_is_handed_out_afresh() -> None:
    trail = ServiceSource("svc", None).error_history
    trail.append(epoch(_at(60)), 0.02)
    before = trail.samples()
    # The start-up range query arrives late: older points go in front; where both
    # have a sample at the same time, the one recorded stays.
    loaded = Samples.of([Point(_at(0), 0.01), Point(_at(30), 0.015), Point(_at(60), 0.9)])
    _extend(trail, [Series({"service": "svc"}, loaded)], 1.0)
    after = trail.samples()
    assert after is not before
    assert [(p.at, p.value) for p in after] == [(_at(0), 0.01), (_at(30), 0.015), (_at(60), 0.02)]


def test_samples_read_as_points_and_answer_time_windows_without_points() -> None:
    points = [Point(_at(15 * i), float(i)) for i in range(5)]
    samples = Samples.of(points)
    assert len(samples) == 5 and samples[0] == points[0] and samples[-1] == points[-1]
    assert samples[1:3] == tuple(points[1:3]) and list(samples) == points
    assert list(samples.since(_at(30)).values) == [2.0, 3.0, 4.0]  # at or after
    assert list(samples.until(_at(30)).values) == [0.0, 1.0, 2.0]  # at or before
    assert not samples.since(_at(61)) and not samples.until(_at(-1))
    assert pickle.loads(pickle.dumps(samples)) == samples
    # Metrics takes a tuple of points (as tests and older callers give) as Samples.
    assert Metrics(error_rate_history=tuple(points)).error_rate_history == samples
