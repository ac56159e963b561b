"""Every shipped scenario, played in simulated time through the console.

Each scenario's world runs on a speed-0 clock that only `advance()` moves, is
served on 127.0.0.1 like a drill, and is watched by a real `Session` built
from the config the drill writes (the platform adapter, Prometheus, health
endpoint). The operator declares the scenario's facts when the drill clock
passes them; the decision at `expect.by` must be `expect.action`, for the
runbook row the scenario drills.

Every kind of service (Kubernetes, blue-green, canary, ECS) is in that
config, so every scenario goes through its own platform adapter.

Further down: a scenario written from docs/drills.md alone, served by the CLI
and driven with the real kubectl, and the world's determinism.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from queue import Empty, Queue

import pytest
from support import require_binary, wait_until

from console.clock import ScaledClock
from console.config import load
from console.decision import ROWS as DECISION_ROWS
from console.decision import urgency
from console.drill import runner
from console.drill.ecs import DRILL_CREDENTIAL_ENV
from console.drill.scenario import Scenario, list_scenarios, load_scenario
from console.drill.server import DrillServer
from console.drill.world import SAMPLE_INTERVAL, World
from console.model import Action, Decision, Facts, Snapshot
from console.session import Session
from console.store import Store

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

ROW_DRILLED = {
    "bad-deploy": "Error rate > 5%",
    "blue-green": "Error rate > 5%",
    "canary": "Error rate > 5%",
    "data-corruption": "Data corruption detected",
    "ecs-bad-deploy": "Error rate > 5%",
    "gitops-argocd": "Error rate > 5%",
    "gitops-flux": "Error rate > 5%",
    "error-creep": "Error rate 1-5%",
    "external-outage": "External service issue",
    "intermittent": "Intermittent errors",
    "latency-spike": "Latency spike",
    "migration-applied": "Database migration applied",
    "minor-bug": "Minor bug, workaround exists",
    "reversible-migration": "Database migration applied",
    "security-vulnerability": "Security vulnerability active",
    "service-down": "Service completely down",
    "single-endpoint": "Single endpoint failing",
    "fleet": "Error rate > 5%",
    "previous-also-bad": "Error rate > 5%",
}
"""The runbook row each shipped scenario drills: it must be among the reasons
of the decision at `expect.by`."""

def _fact_fields() -> set[str]:
    return {f.name for f in fields(Facts)}


@dataclass(frozen=True)
class Seen:
    """One service's snapshot and decision at one moment of the drill."""

    elapsed: float
    snapshot: Snapshot
    decision: Decision


class _Observer:
    """Watches a drill's services the way the console would (a real Session on
    the config the drill writes), with the operator declaring facts as the
    world reveals them."""

    def __init__(self, scenario: Scenario, world: World, server_url: str, tmp_path: Path) -> None:
        self.world = world
        _kubeconfig, config_path = runner.write_configs(scenario, server_url, tmp_path / "drill")
        self.session = Session(load(config_path), Store(tmp_path / "db"), clock=world.clock, operator="trainee@drill")

    def declare_known_facts(self) -> None:
        """Declare every fact the world has revealed by now (the scenario's t=0
        facts, timeline `facts` events, an external outage) that differs from
        what was declared."""
        for name, value in self.world.state()["facts"].items():
            assert name in _fact_fields()
            for service in self.session.services:
                if getattr(self.session.facts(service), name) != value:
                    self.session.declare(service, name, value)

    async def look(self) -> list[Seen]:
        elapsed = self.world.elapsed()
        return [Seen(elapsed, v.snapshot, v.decision) for v in await self.session.refresh()]

    async def aclose(self) -> None:
        await self.session.aclose()


def _moments(scenario: Scenario) -> list[float]:
    """Offsets to look at: t=0, each timeline event up to `expect.by` (the
    operator looks when something happens), and `by` itself. The world is
    event-driven, so fewer looks change nothing but the test's run time."""
    by = scenario.expect.by or 0.0
    return sorted({0.0, by, *(event.at for event in scenario.timeline if event.at <= by)})


@pytest.mark.parametrize("name", list_scenarios())
async def test_scenario_plays_to_its_expected_action(name: str, tmp_path: Path, monkeypatch) -> None:
    scenario = load_scenario(name)
    # What runner.start() exports for a console in the drill's process: the
    # dummy ECS keys the config names, and the drill's Slack sink.
    for variable, value in DRILL_CREDENTIAL_ENV.items():
        monkeypatch.setenv(variable, value)
    clock = ScaledClock(scenario.start, speed=0)
    world = World(scenario, clock=clock)
    expected = Action(scenario.expect.action)
    with DrillServer(world) as server:
        monkeypatch.setenv(runner.DRILL_SLACK_ENV, runner.slack_webhook_url(server.url))
        observer = _Observer(scenario, world, server.url, tmp_path)
        history: list[list[Seen]] = []
        try:
            for moment in _moments(scenario):
                clock.advance(moment - world.elapsed())
                world.advance()
                observer.declare_known_facts()
                history.append(await observer.look())
        finally:
            await observer.aclose()

    final = history[-1]
    assert {s.snapshot.service for s in final} == {s.name for s in scenario.services}
    for seen in final:
        assert seen.snapshot.errors == (), f"{name}: {seen.snapshot.service}: {seen.snapshot.errors}"
        assert not seen.snapshot.stale
    # With several services, the incident is about the most urgent one.
    worst = max(final, key=lambda s: urgency(s.decision.action))
    by = scenario.expect.by or 0.0
    assert worst.decision.action == expected, (
        f"{name} at {by:.0f} s: {worst.decision.action.value} "
        f"({'; '.join(str(r) for r in worst.decision.reasons)}), expected {expected.value}"
    )
    conditions = [r.condition for r in worst.decision.reasons]
    assert ROW_DRILLED[name] in conditions, f"{name}: {ROW_DRILLED[name]!r} not among {conditions}"
    assert worst.decision.freeze_writes == (ROW_DRILLED[name] == "Data corruption detected")
    if any((event.facts or event.external_outage) and event.at > 0 for event in scenario.timeline):
        # A fact revealed later, not the signals at t=0, makes the difference.
        first = max(history[0], key=lambda s: urgency(s.decision.action))
        assert first.decision.action != expected, f"{name}: already {expected.value} at t=0"
    if expected != Action.HEALTHY:
        # The verdict reached the incident timeline, as the console records it.
        recorded = [e.text for e in observer.session.timeline() if e.kind == "decision"]
        assert any(text.startswith(expected.headline) for text in recorded), recorded


async def test_the_fleet_has_twenty_services_or_more_and_one_failing(tmp_path: Path, monkeypatch) -> None:
    scenario = load_scenario("fleet")
    assert len(scenario.services) >= 20
    clock = ScaledClock(scenario.start, speed=0)
    world = World(scenario, clock=clock)
    with DrillServer(world) as server:
        monkeypatch.setenv(runner.DRILL_SLACK_ENV, runner.slack_webhook_url(server.url))
        observer = _Observer(scenario, world, server.url, tmp_path)
        try:
            seen = await observer.look()
        finally:
            await observer.aclose()
    failing = [s.snapshot.service for s in seen if s.decision.action != Action.HEALTHY]
    assert failing == ["pricing-service"], failing


async def test_previous_also_bad_one_back_still_fails_two_back_heals(tmp_path: Path, monkeypatch) -> None:
    # The scenario's point: the previous revision (1.4.1) is bad too; the right target is two back (1.4.0).
    scenario = load_scenario("previous-also-bad")
    running = runner.start(scenario, speed=50, directory=tmp_path / "drill")
    session = Session(load(running.config_path), Store(tmp_path / "db"), clock=running.world.clock,
                      operator="trainee@drill")
    try:
        [view] = await session.refresh()
        assert view.decision.action == Action.ROLLBACK_NOW
        assert view.snapshot.current_revision.versions == ("1.4.2",)
        progress = list(session.execute(session.plan_rollback("checkout-service"), timeout=120))
        assert progress[-1].done and not progress[-1].failed
        running.world.clock.advance(120)
        [view] = await session.refresh()
        assert view.snapshot.current_revision.versions == ("1.4.1",)
        assert view.decision.action == Action.ROLLBACK_NOW  # one back is still failing

        two_back = next(r for r in view.snapshot.history if r.versions == ("1.4.0",))
        progress = list(session.execute(session.plan_rollback("checkout-service", two_back.number), timeout=120))
        assert progress[-1].done and not progress[-1].failed
        running.world.clock.advance(120)
        [view] = await session.refresh()
        assert view.snapshot.current_revision.versions == ("1.4.0",)
        assert view.decision.action == Action.HEALTHY
    finally:
        await session.aclose()
        running.stop()


def test_every_runbook_row_has_a_scenario() -> None:
    assert set(ROW_DRILLED) == set(list_scenarios()), "a shipped scenario needs its row in ROW_DRILLED"
    for name, row in ROW_DRILLED.items():
        assert load_scenario(name).expect.row == row, f"{name}: expect.row (shown by drill --list) is not {row!r}"
    assert {row.condition for row in DECISION_ROWS} <= set(ROW_DRILLED.values())


def test_every_runbook_action_has_a_scenario() -> None:
    actions = {load_scenario(name).expect.action for name in list_scenarios()}
    # SIGNALS UNAVAILABLE is the console's own verdict on missing data, not a runbook action.
    assert actions == {a.value for a in Action} - {Action.HEALTHY.value, Action.SIGNALS_UNAVAILABLE.value}


DOCS = REPO / "README.md"


def test_the_docs_example_is_a_valid_scenario_and_every_shipped_one_is_listed(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    blocks = text.split("```yaml\n")[1:]
    assert blocks, "the README has a YAML scenario example"
    example = tmp_path / "example.yaml"
    example.write_text(blocks[0].split("```", 1)[0])
    scenario = load_scenario(example)
    assert scenario.services[0].history[-1].version in scenario.services[0].versions
    for name in list_scenarios():
        assert f"| `{name}` |" in text, f"the README does not list the shipped scenario {name}"


# --- A scenario written from the docs alone, through the CLI and real kubectl ----

PAYMENTS = textwrap.dedent(
    """\
    name: payments-regression
    description: >
      payments 2.1.0 went out a minute ago; 12 % of charges fail.
    seed: 42
    start: "2023-06-01T12:00:00Z"
    services:
      - name: payments
        namespace: billing
        replicas: 5
        image: registry.example.com/payments
        request_rate: 80
        routes:
          /charges: 0.8
          /refunds: 0.2
        history:
          - {version: "2.0.0", age: 3d, change_cause: "deploy 2.0.0"}
          - {version: "2.1.0", age: 1m, change_cause: "deploy 2.1.0"}
        versions:
          "2.1.0":
            error_rate: 0.12
            latency_p95_ms: 900
            log_error: "card network timeout after 900ms"
    expect:
      action: rollback_now
      by: 5m
    """
)


def _kubectl_binary() -> str:
    return require_binary("kubectl", "kubernetes-client")


def _lines(stream, queue: Queue) -> None:
    for line in iter(stream.readline, ""):
        queue.put(line.rstrip("\n"))


def _wait_for_ready(process: subprocess.Popen, queue: Queue, timeout: float = 30.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = queue.get(timeout=0.2)
        except Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if line == "ready":
            return seen
    raise AssertionError(f"the drill did not print 'ready' (exit {process.poll()}): {seen} {process.stderr.read() if process.poll() is not None else ''}")


def _status(config: Path, env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "console", "status", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    (status,) = json.loads(result.stdout)
    return status


def test_a_scenario_file_written_from_the_docs_runs_with_kubectl_and_status(tmp_path: Path) -> None:
    binary = _kubectl_binary()
    scenario_file = tmp_path / "payments.yaml"
    scenario_file.write_text(PAYMENTS)
    directory = tmp_path / "drill"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "console", "drill", "--scenario-file", str(scenario_file),
         "--serve-only", "--write-config", str(directory), "--speed", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    queue: Queue = Queue()
    threading.Thread(target=_lines, args=(process.stdout, queue), daemon=True).start()
    try:
        banner = _wait_for_ready(process, queue)
        assert any("payments-regression" in line for line in banner)
        kube_env = {**env, "KUBECONFIG": str(directory / "kubeconfig")}

        def kubectl(*args: str) -> str:
            result = subprocess.run(
                [binary, "--cache-dir", str(tmp_path / "kube-cache"), "--request-timeout=10s", "-n", "billing", *args],
                capture_output=True, text=True, timeout=60, env=kube_env,
            )
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
            return result.stdout

        history = [line.split() for line in kubectl("rollout", "history", "deployment/payments").strip().splitlines()[1:]]
        assert history == [["REVISION", "CHANGE-CAUSE"], ["1", "deploy", "2.0.0"], ["2", "deploy", "2.1.0"]]

        before = _status(directory / "config.yaml", env)
        assert before["service"] == "payments"
        assert before["error_rate"] == pytest.approx(0.12, abs=1e-6)
        assert before["stale"] is False, "the serve-only world must run on the wall clock"
        assert (before["ready"], before["desired"]) == (5, 5)
        assert before["images"] == ["registry.example.com/payments:2.1.0"]
        assert before["decision"]["action"] == "rollback_now"

        assert kubectl("rollout", "undo", "deployment/payments").strip() == "deployment.apps/payments rolled back"
        assert 'deployment "payments" successfully rolled out' in kubectl("rollout", "status", "deployment/payments", "--timeout=60s")
        assert kubectl("get", "deployment", "payments", "-o", "jsonpath={.spec.template.spec.containers[0].image}") == "registry.example.com/payments:2.0.0"

        # The next scrape (15 simulated seconds, half a wall second) sees the rollback.
        seen: list[dict] = []

        def healthy() -> bool:
            seen.append(_status(directory / "config.yaml", env))
            return seen[-1]["decision"]["action"] == "healthy"

        wait_until(healthy, lambda: f"status to say healthy; last: {seen[-1]}", timeout=10, interval=0.3)
        after = seen[-1]
        assert after["images"] == ["registry.example.com/payments:2.0.0"]
        assert after["revision"] == 3
        assert after["error_rate"] == pytest.approx(0.001, abs=1e-6)
        assert after["decision"]["action"] == "healthy", after
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, process.stderr.read()


# --- Determinism and speed --------------------------------------------------------


def _world_dump(world: World) -> dict:
    """Every stored object (uids included: the world seeds them), every metric
    sample, the drill state and recent logs."""
    objects = {resource: world.store.list(resource)[0] for resource in sorted(world.store.resources())}
    pods = objects.get("pods", [])
    dump = {
        "objects": objects,
        "samples": {name: [repr(s) for s in world.samples(name)] for name in world.service_names()},
        "state": world.state(),
        "logs": {
            pod["metadata"]["name"]: world.pod_log(pod["metadata"]["namespace"], pod["metadata"]["name"], tail_lines=20)
            for pod in pods
            if pod["status"]["containerStatuses"][0].get("started") or pod["status"]["containerStatuses"][0].get("lastState")
        },
    }
    return json.loads(json.dumps(dump, sort_keys=True))


@pytest.mark.parametrize("name", ["bad-deploy", "service-down", "intermittent", "canary", "external-outage"])
def test_the_same_scenario_and_seed_give_the_same_world(name: str) -> None:
    scenario = load_scenario(name)
    dumps = []
    for _ in range(2):
        clock = ScaledClock(scenario.start, speed=0)
        world = World(scenario, clock=clock)
        for seconds in (1, 7, 15, 60, 240, 600):
            clock.advance(seconds)
            world.advance()
        dumps.append(_world_dump(world))
    assert dumps[0] == dumps[1]
    assert dumps[0]["objects"]["pods"], "a world with pods"


def test_another_seed_gives_another_world() -> None:
    scenario = load_scenario("bad-deploy")
    first = World(scenario, clock=ScaledClock(scenario.start, speed=0))
    second = World(scenario.model_copy(update={"seed": scenario.seed + 1}), clock=ScaledClock(scenario.start, speed=0))
    names = [{p["metadata"]["name"] for p in w.store.list("pods")[0]} for w in (first, second)]
    assert names[0] != names[1]


def test_speed_scales_the_world_clock() -> None:
    scenario = load_scenario("bad-deploy")
    began = time.monotonic()
    fast = World.from_scenario(scenario, speed=120)
    normal = World.from_scenario(scenario, speed=1)
    # Wait on the condition (30 simulated seconds on the fast clock, a quarter
    # second on the normal one), not a fixed sleep.
    wait_until(lambda: fast.clock.now() >= fast.start + timedelta(seconds=30)
               and normal.clock.now() >= normal.start + timedelta(seconds=0.25),
               "the world clocks to move", timeout=60, interval=0.01)
    fast.advance()
    normal.advance()
    wall = time.monotonic() - began
    assert fast.start == normal.start == scenario.start
    assert 30 <= fast.elapsed() <= 120 * wall
    assert 0.25 <= normal.elapsed() <= wall
    # The fast world lived through its scrapes: the metrics moved on with it.
    assert fast.samples("order-service")[-1].at >= fast.start + timedelta(seconds=30 - SAMPLE_INTERVAL)
    assert normal.samples("order-service")[-1].at <= normal.start


def test_the_tui_drill_keeps_the_scenario_time(tmp_path: Path) -> None:
    # (--serve-only starts at the wall clock: the CLI test above checks that
    # `status` on the wall clock finds the metrics fresh.)
    scenario = load_scenario("bad-deploy")
    running = runner.start(scenario, speed=1, directory=tmp_path)
    try:
        assert running.world.start == scenario.start
    finally:
        running.stop()
