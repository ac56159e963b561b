"""The session over a live drill: what it reports after it rolled back."""

from __future__ import annotations

import pytest

from console.config import load
from console.drill import runner
from console.drill.scenario import load_scenario
from console.model import Action
from console.platforms.base import Timeout
from console.session import Session
from console.store import Store

pytestmark = pytest.mark.integration


@pytest.fixture
def drill(tmp_path):
    running = runner.start(load_scenario("bad-deploy"), speed=50, directory=tmp_path / "drill")
    session = Session(load(running.config_path), Store(tmp_path / "incidents.db"), clock=running.world.clock)
    yield running, session
    running.stop()


async def test_after_a_rollback_the_panes_show_the_new_revision_and_the_last_good_baseline(drill):
    running, session = drill
    [view] = await session.refresh()
    assert view.decision.action == Action.ROLLBACK_NOW
    assert view.snapshot.metrics.latency_p95_before_ms == pytest.approx(250)
    assert view.snapshot.current_revision.number == 3

    progress = list(session.execute(session.plan_rollback("order-service"), timeout=120))
    assert progress[-1].done and not progress[-1].failed

    running.world.clock.advance(120)  # let the new pods serve long enough to move the rates
    [view] = await session.refresh()
    # Read at once (not on the next scheduled history read): the console changed it.
    assert view.snapshot.current_revision.number == 4
    assert view.snapshot.current_revision.versions == ("1.2.2",)
    # "Before" stays the last good version's p95 (read before the bad deploy), not the bad one's 2000 ms.
    assert view.snapshot.metrics.latency_p95_before_ms == pytest.approx(250)
    assert not view.snapshot.signals.latency_spike
    assert view.decision.action == Action.HEALTHY
    await session.aclose()


def test_the_configs_rollout_timeout_bounds_a_rollback_by_default(tmp_path):
    running = runner.start(load_scenario("bad-deploy"), speed=50, directory=tmp_path / "drill")
    try:
        # Three pods of 10 simulated seconds each cannot be ready within 1 s.
        config = load(running.config_path).model_copy(update={"rollout_timeout": 1.0})
        session = Session(config, Store(tmp_path / "incidents.db"), clock=running.world.clock)
        with pytest.raises(Timeout, match="within 1 s"):
            list(session.execute(session.plan_rollback("order-service")))
    finally:
        running.stop()


async def test_a_viewers_session_writes_nothing(drill):
    """`watch --viewer` / `web --follow`: the viewer decides like the driver but records nothing."""
    _, session = drill
    session.read_only = True
    [view] = await session.refresh()
    assert view.decision.action == Action.ROLLBACK_NOW
    assert session.store.open_incident_for("order-service") is None
    await session.aclose()


async def test_the_rollback_complete_message_compares_with_the_numbers_before_writes_were_frozen(drill):
    """After a freeze (scaled to 0: every request fails) the message's "was" is the bad
    version serving (8 %), not the frozen service's 100 %."""
    from console import incident as incidents
    from console.comms import MessageKind

    running, session = drill
    [view] = await session.refresh()
    serving = view.snapshot.metrics.error_rate
    assert serving == pytest.approx(0.08, abs=0.02)
    outcome = session.corruption_response("order-service").run("freeze")  # the runbook's first step
    assert outcome.ok, outcome
    # Later, with the service scaled to 0, the rollback starts at 100 % errors.
    started = incidents.rollback_started(session.plan_rollback("order-service"))
    session.record(started.__class__(started.kind, started.text, {**started.data, "before": {"error_rate": 1.0}}),
                   service="order-service")
    assert session.metrics_before("order-service").error_rate == pytest.approx(serving)
    text = session.compose_message("order-service", MessageKind.ROLLBACK_COMPLETE).text
    assert "(was 100" not in text and f"(was {serving * 100:.0f}" in text.replace(".0 %", " %").replace(".0%", "%")
    await session.aclose()


async def test_the_rollback_in_progress_message_offered_before_a_plan_names_the_versions(drill):
    """`m` before `r`: the message says what a plain rollback would do (from the
    rollout history the refresh read), not "unknown → unknown"."""
    from console.comms import MessageKind

    _, session = drill
    await session.refresh()
    text = session.compose_message("order-service", MessageKind.ROLLBACK_IN_PROGRESS).text
    assert "**Version:** 1.2.3 → 1.2.2" in text, text
    await session.aclose()


def _many_services(count: int) -> dict:
    """A scenario of `count` healthy services, one namespace each (as bench/common.py builds them)."""
    services = [{
        "name": f"svc-{i:03d}", "namespace": f"ns-{i:03d}", "replicas": 1, "image": f"registry.example.com/svc-{i:03d}",
        "ready_seconds": 0, "request_rate": 40,
        "history": [{"version": "1.4.0", "age": "14d"}, {"version": "1.5.0", "age": "6d"}],
        "versions": {"1.5.0": {"error_rate": 0.001, "latency_p95_ms": 250}},
    } for i in range(count)]
    return {"name": f"many-{count}", "description": "Healthy services, more than one history batch.", "seed": 7,
            "start": "2024-01-17T14:43:00Z", "services": services, "expect": {"action": "healthy", "by": "5m"}}


async def test_sparkline_history_loads_in_batches_for_many_services(tmp_path, monkeypatch):
    """The start-up range queries ask for HISTORY_BATCH services at a time:
    one query for hundreds of services took the drill's query API past the
    Prometheus timeout, so no sparkline ever had its history (and a real
    Prometheus's answer was tens of MB of JSON objects at once)."""
    import yaml

    from console.signals import poller as poller_module
    from console.signals.prometheus import PrometheusClient

    monkeypatch.setattr(poller_module, "HISTORY_BATCH", 4)
    count = 10  # three batches: 4, 4, 2
    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump(_many_services(count)))
    running = runner.start(load_scenario(path), speed=50, directory=tmp_path / "drill")
    session = Session(load(running.config_path), Store(tmp_path / "incidents.db"), clock=running.world.clock)
    asked: list[str] = []
    real = PrometheusClient.query_range

    async def counting(self, promql, *args, **kwargs):
        asked.append(promql)
        return await real(self, promql, *args, **kwargs)

    monkeypatch.setattr(PrometheusClient, "query_range", counting)
    try:
        views = await session.refresh()
        assert len(views) == count
        assert all(view.snapshot.signals.history_loaded for view in views)
        assert all(len(view.snapshot.metrics.error_rate_history) > 10 for view in views)
        assert all(len(view.snapshot.metrics.latency_history) > 10 for view in views)
        assert len(asked) == 2 * 3  # per signal: 4 + 4 + 2 services
        named = [promql.count("svc-") for promql in asked]
        assert sorted(named) == [2, 2, 4, 4, 4, 4]
    finally:
        await session.aclose()
        running.stop()
