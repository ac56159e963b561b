"""What the refresh process sends of a sparkline each cycle: the change, and
the console rebuilds exactly the child's sparkline from it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from console.model import Point, Samples, Trail
from console.refresher import apply_sparkline_change, sparkline_change

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)


def points(*seconds: int) -> list[Point]:
    return [Point(T0 + timedelta(seconds=s), float(s)) for s in seconds]


def follow(*sparklines: tuple[Point, ...]) -> list[tuple]:
    """Send each sparkline as a change against the one before; check the receiver matches each time."""
    received = Trail()
    sent = None
    changes = []
    for points_now in sparklines:
        now = Samples.of(points_now)
        change = sparkline_change(sent, now)
        apply_sparkline_change(received, change)
        assert received.samples() == now
        changes.append(change)
        sent = now
    return changes


def test_a_steady_cycle_sends_only_what_left_the_front_and_the_new_points():
    p = points(0, 10, 20, 30, 40)
    first, second, third = follow(tuple(p[:3]), tuple(p[1:4]), tuple(p[1:5]))
    assert first[0] == "all"
    assert second == ("drop", 1, (p[3],))
    assert third == ("drop", 0, (p[4],))
    assert isinstance(second[2], Samples)  # two arrays cross the pipe, not point objects


def test_an_unchanged_sparkline_sends_nothing_new():
    p = tuple(points(0, 10))
    assert follow(p, p)[1] == ("drop", 0, ())


def test_a_reloaded_history_merged_into_the_middle_is_sent_whole():
    old = points(0, 20, 40)
    # The same end points, a point merged between them: not a drop-and-append.
    merged = (old[0], *points(10), old[1], old[2])
    assert follow(tuple(old), merged)[1][0] == "all"


def test_a_kept_sample_whose_value_changed_is_sent_whole():
    changed = (Point(T0, 7.0), *points(10, 20))
    assert follow(tuple(points(0, 10)), changed)[1][0] == "all"


def test_a_sparkline_that_emptied_or_started_empty_follows():
    p = tuple(points(0, 10))
    changes = follow((), p, (), p)
    assert [c[0] for c in changes] == ["all", "drop", "drop", "drop"]


def test_the_console_shares_an_unchanged_sparkline_between_snapshots():
    from dataclasses import replace as change

    from console.model import Metrics, Snapshot
    from console.refresher import Decoder, Encoder

    p = tuple(points(0, 10))
    first = Snapshot("svc", T0, metrics=Metrics(error_rate_history=p, latency_history=p))
    later = change(first, taken_at=T0 + timedelta(seconds=5))
    newer = change(first, metrics=Metrics(error_rate_history=p + tuple(points(20)), latency_history=p))
    encoder, decoder = Encoder(), Decoder()
    a, b, c = (decoder.decode(encoder.encode([s]))[0] for s in (first, later, newer))
    assert a.metrics == first.metrics and b.metrics == first.metrics and c.metrics.error_rate_history[:2] == p
    assert b.metrics.error_rate_history is a.metrics.error_rate_history  # no copy while nothing changed
    assert c.metrics.latency_history is a.metrics.latency_history
    assert len(c.metrics.error_rate_history) == 3
