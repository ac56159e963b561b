"""Twenty `status` runs at once on one incident store, as separate processes
(not threads on one connection): the decision is recorded once, when it
changes, in one incident."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from support import served_drill

from console.store import Store

pytestmark = pytest.mark.integration

RUNS = 20


def test_twenty_concurrent_status_runs_record_one_decision(tmp_path):
    directory = tmp_path / "drill"
    state = tmp_path / "state"
    env = {**os.environ, "XDG_STATE_HOME": str(state), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    with served_drill("bad-deploy", "--write-config", str(directory)):
        # Twenty processes on a small machine are slow: generous timeouts, so every run sees the signals.
        config = yaml.safe_load((directory / "config.yaml").read_text())
        config["prometheus"]["timeout"] = 60
        for cluster in config.get("clusters", {}).values():
            cluster["timeout"] = 60
        (directory / "patient.yaml").write_text(yaml.safe_dump(config))
        runs = [
            subprocess.Popen([sys.executable, "-m", "console", "status", "--config", str(directory / "patient.yaml"), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
            for _ in range(RUNS)
        ]
        results = [(run.communicate(timeout=300), run.returncode) for run in runs]
    for (out, err), code in results:
        assert code == 0, (out, err)
        assert json.loads(out)[0]["decision"]["action"] == "rollback_now"
    with Store(directory / "drill-incidents.db") as store:  # the drill's written config keeps its own
        incidents = store.incidents()
        assert len(incidents) == 1, [i.id for i in incidents]
        decisions = [e for e in store.events(incidents[0].id) if e.kind == "decision"]
    assert len(decisions) == 1, [e.text for e in decisions]
    assert decisions[0].text.startswith("ROLLBACK NOW")


def test_a_changed_decision_is_recorded_again(tmp_path):
    """Same verdict twice: one event; a different verdict: a second one (store level, two connections)."""
    from datetime import datetime, timezone

    path = tmp_path / "incidents.db"
    at = datetime(2024, 1, 17, 14, 45, tzinfo=timezone.utc)
    first, second = Store(path), Store(path)
    try:
        assert first.append_if_changed("svc", "decision", "ROLLBACK NOW", at, "action", data={"action": "rollback_now"})
        assert second.append_if_changed("svc", "decision", "ROLLBACK NOW", at, "action", data={"action": "rollback_now"}) is None
        assert second.append_if_changed("svc", "decision", "HEALTHY", at, "action", data={"action": "healthy"})
        assert first.append_if_changed("svc", "decision", "HEALTHY", at, "action", data={"action": "healthy"}) is None
        assert second.append_if_changed("other", "decision", "HEALTHY", at, "action", data={"action": "healthy"},
                                        open_incident=False) is None
        [incident] = first.incidents()
        assert [e.text for e in first.events(incident.id, newest_first=False) if e.kind == "decision"] == [
            "ROLLBACK NOW", "HEALTHY"]
    finally:
        first.close()
        second.close()
