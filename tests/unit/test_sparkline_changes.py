"""What the refresh process sends of a sparkline each cycle: the change, and
the console rebuilds exactly the child's sparkline from it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from console import model
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


# --- a trail hands out windows onto its own arrays ---------------------------------


def _recording(trail: Trail, cycles: int, keep: int, start: int = 0) -> list[tuple[Samples, list[Point]]]:
    """Run `cycles` poller cycles (append one sample, keep the newest `keep`),
    keeping every Samples handed out beside the points it held then."""
    handed: list[tuple[Samples, list[Point]]] = []
    for second in range(start, start + cycles):
        trail.append((T0 + timedelta(seconds=second)).timestamp(), float(second))
        trail.drop_first(len(trail) - keep)
        samples = trail.samples()
        handed.append((samples, list(samples)))
    return handed


def test_samples_handed_out_never_change_as_the_trail_moves_on():
    trail = Trail()
    handed = _recording(trail, cycles=500, keep=40)  # the trail moves to new arrays many times meanwhile
    for samples, held in handed:
        assert list(samples) == held
    assert [p.value for p in handed[-1][1]] == [float(s) for s in range(460, 500)]


def test_a_trail_shares_its_arrays_with_what_it_hands_out_and_stays_bounded():
    """No copy per cycle: the Samples is a window onto the trail's arrays,
    whose dropped front and room for new samples are about an eighth each."""
    trail = Trail()
    arrays = set()
    for second in range(1000):
        trail.append((T0 + timedelta(seconds=second)).timestamp(), float(second))
        trail.drop_first(len(trail) - 100)
        samples = trail.samples()
        assert samples._times is trail._times and samples._values is trail._values
        assert len(trail._times) <= 100 + 2 * (max(model.ROOM_MIN, 100 // model.ROOM_SHARE) + model.ROOM_JITTER)
        arrays.add(id(trail._times))
    assert len(arrays) < 1000 // 10  # new arrays every few dozen cycles, not every cycle


def test_trails_that_fill_up_in_step_move_to_new_arrays_in_different_cycles():
    """Every service's trail has the same length; were their rooms the same,
    all of them would make new arrays in the same cycle (issue 17, peak RSS)."""
    trails = [Trail() for _ in range(64)]
    history = Samples.of(points(*range(0, 2400, 10)))
    for trail in trails:
        trail.replace(history)
    moved_in: dict[int, int] = {}
    for second in range(2400, 2400 + 200 * 10, 10):
        for trail in trails:
            before = trail._times
            trail.append((T0 + timedelta(seconds=second)).timestamp(), float(second))
            trail.drop_first(1)
            if trail._times is not before:
                moved_in[second] = moved_in.get(second, 0) + 1
    assert moved_in and max(moved_in.values()) <= len(trails) // 8
    assert [list(t.samples()) for t in trails] == [list(trails[0].samples())] * len(trails)


def test_a_steady_cycle_between_windows_of_one_trail_compares_nothing(monkeypatch):
    """Consecutive windows of one trail share their common samples by
    construction: the change is worked out without comparing them (only when
    the trail moved to new arrays are the common samples compared)."""
    trail = Trail()
    handed = _recording(trail, cycles=60, keep=20)
    received = Trail()
    apply_sparkline_change(received, sparkline_change(None, handed[0][0]))
    compared = []
    real_eq = Samples.__eq__
    monkeypatch.setattr(Samples, "__eq__", lambda self, other: compared.append(1) or real_eq(self, other))
    moved = 0
    for (before, _), (now, _) in zip(handed, handed[1:]):
        compared.clear()
        change = sparkline_change(before, now)
        if now._times is before._times:
            assert compared == []
        else:
            moved += 1
        assert change[:2] == ("drop", 1 if len(before) == 20 else 0)
        apply_sparkline_change(received, change)
        assert list(received.samples()) == list(now)
    assert moved >= 1


def test_windows_read_like_copies():
    samples = Samples.of(points(0, 10, 20, 30, 40, 50))
    window = samples[1:5]
    assert list(window) == points(10, 20, 30, 40)
    assert list(window[1:]) == points(20, 30, 40) and list(window[::2]) == points(10, 30)
    assert window[-1] == points(40)[0] and window[0] == points(10)[0]
    assert list(window.times) == [p.at.timestamp() for p in points(10, 20, 30, 40)]
    assert list(window.since(T0 + timedelta(seconds=25))) == points(30, 40)
    assert list(window.until(T0 + timedelta(seconds=25))) == points(10, 20)
    assert window == Samples.of(points(10, 20, 30, 40)) and hash(window) == hash(Samples.of(points(10, 20, 30, 40)))
    assert len(window[3:1]) == 0 and not window[3:1]
    import pickle

    assert pickle.loads(pickle.dumps(window)) == window


def test_a_received_sparkline_reads_the_same_after_the_trail_moves_on():
    """What came through the pipe becomes the receiver's trail; the Samples it
    came as still reads as it did."""
    came = Samples.of(points(0, 10, 20, 30))
    received = Trail()
    apply_sparkline_change(received, ("all", came))
    assert list(received.samples()) == list(came)
    for second in range(40, 400, 10):
        received.append((T0 + timedelta(seconds=second)).timestamp(), float(second))
        received.drop_first(1)
    assert list(came) == points(0, 10, 20, 30)
    assert [p.value for p in received.samples()] == [360.0, 370.0, 380.0, 390.0]
