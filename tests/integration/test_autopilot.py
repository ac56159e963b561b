"""The runbook's automated rollback trigger, end to end: a drill world, a real
Prometheus evaluating the AutoRollbackTrigger rules, a real Alertmanager
routing them, and `rollback-console autopilot` as a real subprocess.
Nobody is at the keys: everything the tests see happened through the chain.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml
import support
from support import require_binary

from console.drill import alertmanager_runner, runner
from console.drill.scenario import load_scenario
from console.store import Store

WAIT = 120.0
"""Upper bound on waiting for the chain (a failing test, not a slow one)."""


@pytest.fixture(autouse=True)
def _binaries() -> None:
    require_binary("prometheus", "prometheus")
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")


def wait_until(condition, what: str, timeout: float = WAIT):
    """support.wait_until with this module's longer deadline (a real Alertmanager's rule `for:`)."""
    return support.wait_until(condition, what, timeout, interval=0.2)


def start_drill(tmp_path: Path, name: str, edit=None) -> runner.RunningDrill:
    running = runner.start(load_scenario(name), directory=tmp_path / "drill", with_alertmanager=True)
    try:
        running.prometheus.wait_for_series()
        if edit is not None:
            config = yaml.safe_load(running.config_path.read_text())
            edit(config, running)
            running.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    except BaseException:
        running.stop()
        raise
    return running


def messages(running) -> list[str]:
    body = httpx.get(f"{running.server.url}/slack/messages", timeout=5).json()
    return [m["payload"]["text"] for m in body["messages"]]


def patches(running, deployment: str) -> list[list]:
    """The PATCH requests the drill's API answered for `deployment` (the rollbacks issued)."""
    body = httpx.get(f"{running.server.url}/drill/requests", timeout=5).json()
    return [r for r in body["requests"] if r[0] == "PATCH" and r[1].endswith(f"/deployments/{deployment}")]


def metrics(base_url: str) -> dict[str, float]:
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def base(running) -> str:
    return running.autopilot_url.rsplit("/", 1)[0]


def timeline(store_path: Path, service: str) -> list:
    """The service's open incident's events, oldest first ([] before there is one)."""
    with Store(store_path) as store:
        incident = store.open_incident_for(service)
        return store.events(incident, newest_first=False) if incident else []


# --- the whole chain ----------------------------------------------------------


def test_bad_deploy_rolled_back_with_nobody_at_the_keys(tmp_path):
    running = start_drill(tmp_path, "bad-deploy")
    try:
        running.start_autopilot()
        texts = wait_until(lambda: (t := messages(running)) and any("Rollback Complete" in x for x in t) and t,
                           "the Rollback Complete message")
        in_progress = [t for t in texts if "Rollback in Progress" in t]
        complete = [t for t in texts if "Rollback Complete" in t]
        assert len(in_progress) == 1 and len(complete) == 1, texts
        assert "order-service" in in_progress[0] and "@autopilot" in in_progress[0]
        assert texts.index(in_progress[0]) < texts.index(complete[0])
        # One rollback, to the previous version, issued once.
        assert len(patches(running, "order-service")) == 1
        events = timeline(running.store_path, "order-service")
        autopilot_notes = [e for e in events if e.text.startswith("AUTOPILOT: AutoRollbackTrigger firing for order-service")]
        assert autopilot_notes and all(e.actor == "autopilot" for e in autopilot_notes)
        started = [e for e in events if e.kind == "rollback.started"]
        assert len(started) == 1 and started[0].actor == "autopilot"
        assert "1.2.3" in started[0].text and "1.2.2" in started[0].text
        counters = metrics(base(running))
        assert counters["rollback_console_autopilot_rollbacks_started_total"] == 1
        assert counters["rollback_console_autopilot_rollbacks_completed_total"] == 1
        assert counters["rollback_console_autopilot_alerts_received_total"] >= 1
        # The errors stop, the alert resolves, and the timeline closes the loop.
        wait_until(lambda: any(e.text.startswith("AUTOPILOT: AutoRollbackTrigger resolved for order-service")
                               for e in timeline(running.store_path, "order-service")), "the resolved notification")
        assert len(patches(running, "order-service")) == 1
    finally:
        running.stop()


def _irreversible_migration(config: dict, running) -> None:
    """invoice-service's migration state from a status command (what a real
    database's schema_migrations would say): 0042 applied after 5.0.0, not reversible."""
    applied = (datetime.now(timezone.utc) - timedelta(minutes=3)).isoformat()
    status = running.directory / "migrations.json"
    status.write_text(json.dumps([
        {"name": "0042_split_address", "applied_at": applied, "reversible": False},
        {"name": "0041_invoice_pdf", "applied_at": "2024-01-01T00:00:00+00:00", "reversible": True},
    ]))
    config["services"][0]["database"] = {"migration_status": {"command": ["cat", str(status)]}}


@pytest.fixture(scope="module")
def migration_drill(tmp_path_factory):
    """migration-applied with its irreversible migration, an Alertmanager and one autopilot."""
    require_binary("prometheus", "prometheus")
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    running = start_drill(tmp_path_factory.mktemp("migration"), "migration-applied", _irreversible_migration)
    try:
        running.start_autopilot()
        yield running
    finally:
        running.stop()


def _refusals(running) -> list[str]:
    return [t for t in messages(running) if "Autopilot did not roll back invoice-service" in t]


def test_irreversible_migration_refused_and_escalated(migration_drill):
    running = migration_drill
    (refusal,) = wait_until(lambda: _refusals(running), "the autopilot's refusal message")
    assert "0042_split_address" in refusal
    assert "Escalating to Level 2 (Team Lead): @drill-team-lead." in refusal
    assert patches(running, "invoice-service") == []
    assert not [t for t in messages(running) if "Rollback in Progress" in t]
    events = timeline(running.store_path, "invoice-service")
    assert any(e.kind == "escalated" and "level 2" in e.text.lower() for e in events), [e.text for e in events]
    counters = metrics(base(running))
    assert counters['rollback_console_autopilot_rollbacks_refused_total{reason="migration"}'] == 1
    assert counters["rollback_console_autopilot_rollbacks_started_total"] == 0


def test_replayed_payload_and_restarted_alertmanager_start_nothing_twice(migration_drill):
    running = migration_drill
    wait_until(lambda: _refusals(running), "the autopilot's refusal message")
    alert = wait_until(lambda: next((a for a in running.alertmanager.alerts()
                                     if a["labels"].get("service") == "invoice-service"
                                     and a["labels"].get("form") == "ratio"), None), "the alert in Alertmanager")
    payload = {
        "version": "4", "status": "firing", "receiver": "autopilot", "groupKey": "{}:{}", "groupLabels": {},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": running.alertmanager.url,
        "alerts": [{"status": "firing", "labels": alert["labels"], "annotations": alert["annotations"],
                    "startsAt": alert["startsAt"], "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": alert["fingerprint"]}],
    }
    token = os.environ[runner.DRILL_AUTOPILOT_TOKEN_ENV]
    answer = httpx.post(running.autopilot_url, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["duplicates"] == 1 and answer.json()["queued"] == 0

    # A restarted Alertmanager without its data (a pod rescheduled) notifies again.
    before = metrics(base(running))["rollback_console_autopilot_alerts_duplicate_total"]
    running.alertmanager.stop()
    shutil.rmtree(running.alertmanager.directory / "data")
    running.alertmanager.start()
    wait_until(lambda: metrics(base(running))["rollback_console_autopilot_alerts_duplicate_total"] > before,
               "Alertmanager's notification after its restart")
    assert len(_refusals(running)) == 1
    assert patches(running, "invoice-service") == []
    counters = metrics(base(running))
    assert counters['rollback_console_autopilot_rollbacks_refused_total{reason="migration"}'] == 1


def test_killed_autopilot_resumes_the_rollback_it_started(tmp_path):
    running = start_drill(tmp_path, "bad-deploy")
    try:
        first = running.start_autopilot()

        # Killed once its PATCH reached the drill, mid-rollout. (Killed before it, the
        # rollback is planned again: test_autopilot_receiver's never-sent test.)
        wait_until(lambda: patches(running, "order-service"), "the autopilot to patch the deployment")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert not any("Rollback Complete" in t for t in messages(running))

        running.start_autopilot()
        wait_until(lambda: any("Rollback Complete" in t for t in messages(running)), "the resumed Rollback Complete")
        assert len(patches(running, "order-service")) == 1  # never issued twice
        events = timeline(running.store_path, "order-service")
        assert len([e for e in events if e.kind == "rollback.started"]) == 1
        assert any("resuming" in e.text for e in events), [e.text for e in events]
        assert metrics(base(running))["rollback_console_autopilot_rollbacks_started_total"] == 0
    finally:
        running.stop()


def test_two_autopilots_one_acts_and_the_other_takes_over(tmp_path):
    second_port = alertmanager_runner.free_port()

    def leader_election(config: dict, running) -> None:
        config["autopilot"]["leader_election"] = {"cluster": "drill", "namespace": "shop", "lease_seconds": 3}

    running = start_drill(tmp_path, "bad-deploy", leader_election)
    second_config = running.directory / "config-2.yaml"
    data = yaml.safe_load(running.config_path.read_text())
    data["autopilot"]["listen"] = f"127.0.0.1:{second_port}"
    second_config.write_text(yaml.safe_dump(data, sort_keys=False))
    second_url = f"http://127.0.0.1:{second_port}"
    try:
        # Alertmanager notifies both replicas; only the leader acts.
        running.alertmanager.stop()
        token = os.environ[runner.DRILL_AUTOPILOT_TOKEN_ENV]
        am = alertmanager_runner.start([running.autopilot_url, f"{second_url}/alertmanager"], token,
                                       running.alertmanager.directory, port=running.alertmanager.port)
        running.alertmanager = am
        first = running.start_autopilot()
        second = runner.start_autopilot(second_config, running.store_path, running.directory / "autopilot-2.log")
        try:
            wait_until(lambda: any("Rollback Complete" in t for t in messages(running)), "the Rollback Complete message")
            leaders = [metrics(base(running))["rollback_console_autopilot_leader"],
                       metrics(second_url)["rollback_console_autopilot_leader"]]
            assert sorted(leaders) == [0, 1]
            assert len(patches(running, "order-service")) == 1
            assert len([t for t in messages(running) if "Rollback in Progress" in t]) == 1
            started = [metrics(base(running))["rollback_console_autopilot_rollbacks_started_total"],
                       metrics(second_url)["rollback_console_autopilot_rollbacks_started_total"]]
            assert sorted(started) == [0, 1]
            assert started.index(1) == leaders.index(1)

            # The leader stops: the standby takes the lease.
            leader, standby_url = (first, second_url) if leaders[0] == 1 else (second, base(running))
            runner.stop_process(leader)
            wait_until(lambda: metrics(standby_url)["rollback_console_autopilot_leader"] == 1,
                       "the standby to take over", timeout=30)
        finally:
            runner.stop_process(second)
    finally:
        running.stop()


# --- the commands ---------------------------------------------------------------


def test_drill_with_alertmanager_serves_the_chain(tmp_path):
    from support import served_drill

    with served_drill("bad-deploy", "--with-alertmanager", "--write-config", str(tmp_path), timeout=90) as lines:
        alertmanager = next(line for line in lines if line.startswith("alertmanager: "))
        url = alertmanager.split()[1]
        assert httpx.get(f"{url}/-/ready", timeout=5).status_code == 200
        config = yaml.safe_load((tmp_path / "config.yaml").read_text())
        section = config["autopilot"]
        assert section["token_env"] == runner.DRILL_AUTOPILOT_TOKEN_ENV and "token" not in section
        env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines())
        token = env[runner.DRILL_AUTOPILOT_TOKEN_ENV]
        assert token and token not in (tmp_path / "config.yaml").read_text()
        autopilot = f"http://{section['listen']}"
        assert httpx.get(f"{autopilot}/healthz", timeout=5).text == "ok\n"
        # Alertmanager's receiver carries the token from a file, never inline.
        am_config = (tmp_path / "alertmanager" / "alertmanager.yaml").read_text()
        assert token not in am_config and "credentials_file" in am_config
        answer = httpx.post(f"{autopilot}/alertmanager", content=b"{}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert answer.status_code == 400


def test_autopilot_command_refuses_a_config_it_cannot_run(tmp_path):
    from click.testing import CliRunner

    from console.cli import cli

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"services": [{"name": "order-service", "namespace": "shop"}]}))
    result = CliRunner().invoke(cli, ["autopilot", "--config", str(path), "--store", str(tmp_path / "db")])
    assert result.exit_code == 2
    assert "no autopilot: section" in result.output
    path.write_text(yaml.safe_dump({"services": [{"name": "order-service", "namespace": "shop"}],
                                    "autopilot": {"token_env": "NOT_SET_ANYWHERE_14"}}))
    result = CliRunner().invoke(cli, ["autopilot", "--config", str(path), "--store", str(tmp_path / "db")])
    assert result.exit_code == 2
    assert "NOT_SET_ANYWHERE_14 (autopilot.token_env)" in result.output
