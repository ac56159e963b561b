"""Nothing is lost when the console dies, and nothing is done twice.

- A real `python -m console rollback` is SIGKILLed mid-rollback (after its
  PATCH reached the drill) and started again: it finds the rollback in flight
  in the incident store, watches it to the end without issuing it again
  (exactly one PATCH of the deployment in the drill's request log), exit 0.
- The headless rollback run twice: the second run says the service is
  already on the target, exit 0, no second PATCH (a second `kubectl rollout
  undo` would toggle back to the bad version).
- A session restarted on the same store has the incident, the countdown's
  start, the facts, the escalation and the checklist back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner
from support import wait_for, wait_until

from console import incident
from console.cli import cli
from console.clock import ScaledClock
from console.config import load
from console.drill import runner
from console.drill.scenario import load_scenario
from console.drill.server import DrillServer
from console.drill.world import World
from console.session import Session
from console.store import Store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = "/apis/apps/v1/namespaces/shop/deployments/order-service"


def deployment_patches(server_url: str) -> list[list]:
    requests = httpx.get(f"{server_url}/drill/requests", timeout=5).json()["requests"]
    return [r for r in requests if r[0] == "PATCH" and r[1] == DEPLOYMENT]


def template_version(server_url: str) -> str:
    body = httpx.get(f"{server_url}{DEPLOYMENT}", timeout=5).json()
    return body["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]


@pytest.fixture
def slow_drill(tmp_path: Path):
    """The bad-deploy drill served by a real `drill --serve-only` subprocess at
    speed 1, pods taking 6 s to get ready: a rollback runs for ~20 s."""
    scenario = yaml.safe_load((ROOT / "console/drill/scenarios/bad-deploy.yaml").read_text())
    scenario["services"][0]["ready_seconds"] = 6
    scenario_file = tmp_path / "slow-bad-deploy.yaml"
    scenario_file.write_text(yaml.safe_dump(scenario))
    directory = tmp_path / "drill"
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "drill", "--scenario-file", str(scenario_file), "--serve-only",
         "--speed", "1", "--write-config", str(directory)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = None
    try:
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            if "serving at " in line:
                url = line.strip().rsplit(" ", 1)[1]
            if line.strip() == "ready" or time.monotonic() > deadline:
                break
        assert url, "the drill did not start"
        env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), PYTHONUNBUFFERED="1")
        name, value = (directory / "env").read_text().strip().split("=", 1)
        env[name] = value
        yield url, directory / "config.yaml", env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def drill_store(config: Path) -> Path:
    """The incident store a served drill's written config names (`incident.store`: beside it)."""
    return config.parent / "drill-incidents.db"


def rollout_progress_stored(store_path: Path) -> bool:
    """The running rollback has recorded a step of its rollout in the incident store."""
    if not store_path.exists():
        return False
    with Store(store_path) as store:
        incident_id = store.open_incident_for("order-service")
        return incident_id is not None and any(
            e.kind == incident.ROLLBACK_PROGRESS for e in store.events(incident_id, newest_first=False)
        )


def rollback_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "console", "rollback", "order-service", "--config", str(config),
            "--reason", "Error rate spiked to 8%", "--yes", "--timeout", "120"]


def test_sigkill_mid_rollback_then_restart_watches_it_without_a_second_patch(slow_drill, tmp_path) -> None:
    url, config, env = slow_drill
    first = subprocess.Popen(rollback_command(config), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        def while_running(condition):
            def check():
                assert first.poll() is None, f"the rollback ended before it could be killed:\n{first.stdout.read()}"
                return condition()
            return check

        wait_until(while_running(lambda: deployment_patches(url)), "the rollback to patch the deployment", timeout=60)
        # Mid-rollback: the console has stored the rollout's progress while pods are still rolling.
        wait_until(while_running(lambda: rollout_progress_stored(drill_store(config))), "the rollback to record its progress",
                   timeout=60, interval=0.05)
        assert first.poll() is None
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    store_path = drill_store(config)
    with Store(store_path) as store:
        incident_id = store.open_incident_for("order-service")
        state = incident.rebuild(incident_id, store.events(incident_id, newest_first=False))
    assert state.rollback.status is incident.RollbackStatus.IN_PROGRESS

    second = subprocess.run(rollback_command(config), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    assert "already in flight" in output and "not issuing it again" in output
    assert 'deployment "order-service" successfully rolled out' in output
    assert len(deployment_patches(url)) == 1
    assert template_version(url) == "1.2.2"
    with Store(store_path) as store:
        assert store.open_incident_for("order-service") == incident_id  # the same incident, resumed
        events = store.events(incident_id, newest_first=False)
        state = incident.rebuild(incident_id, events)
    assert state.rollback.status is incident.RollbackStatus.COMPLETED
    assert [e.kind for e in events].count(incident.ROLLBACK_STARTED) == 1
    assert any("resuming the watch" in e.text for e in events)
    # Run once more: the rollback is done, the service is on the target, nothing is issued.
    third = subprocess.run(rollback_command(config), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "already on the target 1.2.2" in third.stdout
    assert len(deployment_patches(url)) == 1


def test_headless_rollback_twice_does_not_toggle_back(tmp_path) -> None:
    # From the wall-clock now: the headless command reads the clock of the machine, and metrics stamped
    # in the scenario's past would be stale (INVESTIGATE FIRST, which the gate does not roll back on).
    running = runner.start(load_scenario("bad-deploy"), speed=20.0, directory=tmp_path / "drill",
                           start_at=datetime.now(timezone.utc).replace(microsecond=0))
    try:
        args = ["rollback", "order-service", "--config", str(running.config_path), "--reason", "8% errors", "--yes"]
        first = CliRunner().invoke(cli, args)
        assert first.exit_code == 0, first.output
        assert "Rollback in Progress message posted to #incidents-drill" in first.output
        assert "Rollback Complete message posted to #incidents-drill" in first.output
        assert "Post-rollback checklist:" in first.output

        second = CliRunner().invoke(cli, args)
        assert second.exit_code == 0, second.output
        assert "already on the target 1.2.2" in second.output
        assert "Pass --to-revision N to roll back further." in second.output
        patches = [r for r in running.server.requests if r[0] == "PATCH" and r[1] == DEPLOYMENT]
        assert len(patches) == 1
        with running.world.store.lock:
            deployment = running.world.store.get("deployments", "shop", "order-service")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.2.2")
        # The messages reached the drill's sink: the same two the console sends.
        texts = [m["payload"]["text"] for m in running.server.slack_messages]
        assert any("Rollback in Progress" in t for t in texts) and any("Rollback Complete" in t for t in texts)

        # --to-revision asks for more: the gate asks for it only when the runbook says ROLLBACK NOW,
        # so after the rollback it takes an override; then revision 1 (1.2.1) is rolled back to.
        # The signals lag the rollback (the error rate is a rate over a window of the world's
        # time): wait until the runbook no longer says ROLLBACK NOW, as an operator would see.
        def decision() -> str:
            shown = CliRunner().invoke(cli, ["status", "order-service", "--config", str(running.config_path), "--json"])
            return json.loads(shown.output)[0]["decision"]["action"]

        wait_until(lambda: decision() != "rollback_now", lambda: f"the signals to recover (still {decision()})")
        refused = CliRunner().invoke(cli, args + ["--to-revision", "1"])
        assert refused.exit_code == 3 and "not ROLLBACK NOW" in refused.output, refused.output
        third = CliRunner().invoke(cli, args + ["--to-revision", "1", "--force"])
        assert third.exit_code == 0, third.output
        assert "WARNING (--force): the runbook says" in third.output
        assert len([r for r in running.server.requests if r[0] == "PATCH" and r[1] == DEPLOYMENT]) == 2
    finally:
        running.stop()


def test_headless_rollback_refused_by_the_lease_it_did_not_read_first(tmp_path) -> None:
    """`rollback --yes` sends the change at once after the gate, so the lease's
    atomic create is its check of another console (no read first): held by
    alice, it is refused as the gate refuses, exit 3, with her sentence and
    nothing changed."""
    from console.platforms.kubernetes import KubernetesPlatform

    running = runner.start(load_scenario("bad-deploy"), speed=20.0, directory=tmp_path / "drill",
                           start_at=datetime.now(timezone.utc).replace(microsecond=0))
    try:
        platform = KubernetesPlatform("order-service", "shop", "order-service",
                                      kubeconfig=str(running.kubeconfig_path), clock=running.world.clock)
        alice = platform.rollback_lease("alice@laptop")
        alice.acquire()
        running.server.clear_requests()
        args = ["rollback", "order-service", "--config", str(running.config_path), "--reason", "8% errors", "--yes"]
        refused = CliRunner().invoke(cli, args)
        assert refused.exit_code == 3, refused.output
        assert "Not rolling back order-service: order-service is being rolled back by alice@laptop" in refused.output
        requests = [(m, p) for m, p, _ in running.server.requests if "/leases" in p or m == "PATCH"]
        assert requests == [("POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases"),
                            ("GET", "/apis/coordination.k8s.io/v1/namespaces/shop/leases/rollback-console-order-service")]
        assert template_version(running.server.url) == "1.2.3"

        alice.release()
        done = CliRunner().invoke(cli, args)
        assert done.exit_code == 0, done.output
        assert template_version(running.server.url) == "1.2.2"
    finally:
        running.stop()


def test_a_rollback_recorded_but_never_sent_is_planned_again(tmp_path) -> None:
    """A console killed between recording the rollback's start and sending it:
    run again, the command finds the platform never got the change, records the
    first attempt as failed and plans it again through the gate; one PATCH."""
    running = runner.start(load_scenario("bad-deploy"), speed=20.0, directory=tmp_path / "drill",
                           start_at=datetime.now(timezone.utc).replace(microsecond=0))
    try:
        config = load(running.config_path)
        with Store(running.store_path) as store:  # the written config's incident.store
            session = Session(config, store, operator="a@host")
            session.run(session.refresh(only="order-service"))
            plan = session.plan_rollback("order-service")
            session.record(incident.rollback_started(plan, reason="8% errors"), service="order-service")
            session.close()
        args = ["rollback", "order-service", "--config", str(running.config_path), "--reason", "8% errors", "--yes"]
        dry = CliRunner().invoke(cli, args + ["--dry-run"])
        assert dry.exit_code == 0 and "already in flight" in dry.output, dry.output  # a dry run records nothing

        again = CliRunner().invoke(cli, args)
        assert again.exit_code == 0, again.output
        assert "stopped before the rollback reached the platform (order-service still runs 1.2.3)" in again.output
        assert "planning it again" in again.output and "Rollback Complete message posted" in again.output
        assert len([r for r in running.server.requests if r[0] == "PATCH" and r[1] == DEPLOYMENT]) == 1
        assert template_version(running.server.url) == "1.2.2"
        with Store(running.store_path) as store:
            events = store.events(store.open_incident_for("order-service"), newest_first=False)
        assert [e.kind for e in events if e.kind in (incident.ROLLBACK_STARTED, incident.ROLLBACK_FAILED,
                                                     incident.ROLLBACK_COMPLETED)] == [
            incident.ROLLBACK_STARTED, incident.ROLLBACK_FAILED, incident.ROLLBACK_STARTED, incident.ROLLBACK_COMPLETED]
    finally:
        running.stop()


async def test_a_restarted_session_has_the_incident_back(tmp_path, monkeypatch) -> None:
    scenario = load_scenario("error-creep")
    clock = ScaledClock(scenario.start, 0.0)
    world = World(scenario, clock=clock)
    server = DrillServer(world).start()
    try:
        _, config_path = runner.write_configs(scenario, server.url, tmp_path / "drill")
        monkeypatch.setenv(runner.DRILL_SLACK_ENV, runner.slack_webhook_url(server.url))
        config = load(config_path)
        store = Store(tmp_path / "incidents.db")
        first = Session(config, store, clock=clock, operator="a@host")
        await first.refresh()
        deadline = first.investigate("cart-service")
        first.declare("cart-service", "infrastructure_issue", True)
        await first.refresh()
        clock.advance(90)
        await first.aclose()
        store.close()  # the console dies here; only the store remains

        store = Store(tmp_path / "incidents.db")
        second = Session(config, store, clock=clock, operator="a@host")
        assert second.investigation_deadline("cart-service") == deadline
        assert deadline - clock.now() == timedelta(minutes=5) - timedelta(seconds=90)
        assert second.facts("cart-service").infrastructure_issue
        escalation = second.escalation("cart-service")
        assert (escalation.level, escalation.role) == (3, "SRE/Platform Team")
        assert escalation.contacts == ("@drill-sre", "pager: drill-platform")
        assert escalation.next_at == second.incident_state("cart-service").opened_at + timedelta(minutes=30)
        await second.refresh()
        # The restart records no second decision for an unchanged verdict.
        events = store.events(store.open_incident_for("cart-service"), newest_first=False)
        assert [e.kind for e in events].count(incident.DECISION) == 1
        await second.aclose()
        store.close()
    finally:
        server.stop()


async def test_the_console_killed_mid_rollback_resumes_watching_it(slow_drill, tmp_path, monkeypatch) -> None:
    """The TUI started on the store a killed rollback left behind: it finds the
    rollback in flight, watches it to the end, and `r` does not issue another."""
    from console.ui.app import build_app
    from console.ui.messages import RollbackFinished

    url, config_path, env = slow_drill
    first = subprocess.Popen(rollback_command(config_path), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        def patched():
            assert first.poll() is None, "the rollback ended before it patched the deployment"
            return deployment_patches(url)

        wait_until(patched, "the rollback to patch the deployment", timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()

    for name in ("XDG_STATE_HOME",) + tuple(k for k in env if k == runner.DRILL_SLACK_ENV):
        monkeypatch.setenv(name, env[name])
    config = load(config_path).model_copy(update={"refresh_interval": 0.5})
    store = Store(drill_store(config_path))
    session = Session(config, store, operator="trainee@drill")
    assert session.rollback_in_flight("order-service")
    messages: list[object] = []
    app = build_app(session, animate=False)
    try:
        async with app.run_test(size=(140, 45), message_hook=messages.append) as pilot:
            assert app.rolling_back == "order-service"
            await pilot.press("r")  # refused: the rollback in flight is watched, not issued again
            await pilot.pause()
            assert any("wait for it to finish" in n.message for n in app._notifications)
            await wait_for(pilot, lambda: any(isinstance(m, RollbackFinished) for m in messages),
                           "the resumed rollback to finish", timeout=90)
            finished = next(m for m in messages if isinstance(m, RollbackFinished))
            assert finished.ok, finished.error
            assert app.rolling_back is None
    finally:
        store.close()
    assert len(deployment_patches(url)) == 1
    assert template_version(url) == "1.2.2"
