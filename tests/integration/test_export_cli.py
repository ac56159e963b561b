"""`rollback-console export` after a real (drill) incident: the headless
rollback records it, the export writes it for the ticket and the RCA and
records that the timeline was exported."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from console import incident, locations
from console.cli import cli
from console.drill import runner
from console.drill.scenario import load_scenario
from console.store import Store

pytestmark = pytest.mark.integration




def test_export_after_a_headless_rollback(tmp_path) -> None:
    # On the wall clock: the headless command reads the machine's clock, and metrics stamped in the
    # scenario's past are stale (INVESTIGATE FIRST, which the gate does not roll back on).
    running = runner.start(load_scenario("bad-deploy"), speed=20.0, directory=tmp_path / "drill",
                           start_at=datetime.now(timezone.utc).replace(microsecond=0))
    try:
        result = CliRunner().invoke(cli, ["rollback", "order-service", "--config", str(running.config_path),
                                          "--reason", "Error rate spiked to 8%", "--yes"])
        assert result.exit_code == 0, result.output
    finally:
        running.stop()

    # The drill's written config keeps its incidents beside it (incident.store), not in the real store.
    assert not locations.default_store_path().exists()
    config = ["--config", str(running.config_path)]
    out = tmp_path / "incident.json"
    printed = CliRunner().invoke(cli, ["export", "--latest", "--format", "md", *config])
    assert printed.exit_code == 0 and printed.output.startswith("# DRILL bad-deploy: Incident ")
    result = CliRunner().invoke(cli, ["export", "--latest", "--format", "json", "--output", str(out), *config])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["service"] == "order-service"
    assert data["rollback"]["status"] == "completed" and data["rollback"]["to_versions"] == ["1.2.2"]
    assert data["rollback"]["reason"] == "Error rate spiked to 8%"
    assert data["metrics"]["before"]["error_rate"] > 0.05
    assert "error_rate" in data["metrics"]["after"]
    assert [m["label"] for m in data["messages"] if m["sent"]] == ["Rollback in Progress", "Rollback Complete"]
    assert any(d["decision"] == "rollback" and d["reasons"] == ["Error rate spiked to 8%"] for d in data["decisions"])
    assert any(e["kind"] == incident.ROLLBACK_STARTED for e in data["timeline"])

    with Store(running.store_path) as store:
        events = store.events(data["incident"], newest_first=False)
    exported = [e for e in events if e.kind == incident.TIMELINE_EXPORTED]
    # Only the file: printing the timeline does not preserve anything.
    assert [e.text for e in exported] == [f"Timeline exported to {out.resolve()}"]

    # Markdown to stdout, by id; the earlier export to a file now shows as "Logs preserved".
    result = CliRunner().invoke(cli, ["export", data["incident"], "--format", "md", *config])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# DRILL bad-deploy: Incident {data['incident']}: order-service")
    assert "- [x] Logs preserved for investigation (console: timeline exported to" in result.output
    assert "## Metrics before and after" in result.output and "| Error rate | 8% |" in result.output


def test_export_errors_are_sentences(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["export", "--latest", "--store", str(tmp_path / "none.db")])
    assert result.exit_code == 2 and "no incident database at" in result.output
    Store(tmp_path / "empty.db").close()
    result = CliRunner().invoke(cli, ["export", "--latest", "--store", str(tmp_path / "empty.db")])
    assert result.exit_code == 2 and "There are no incidents" in result.output
    result = CliRunner().invoke(cli, ["export", "INC-x", "--store", str(tmp_path / "empty.db")])
    assert result.exit_code == 2 and "There is no incident INC-x" in result.output
    assert "Traceback" not in result.output
