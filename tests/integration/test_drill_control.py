"""Trainer controls against a served drill: `rollback-console drill-ctl`
over HTTP to `/drill/control`; every control changes the world and is recorded."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from console.cli import cli
from console.clock import ScaledClock
from console.drill.scenario import load_scenario
from console.drill.server import DrillServer
from console.drill.world import World

pytestmark = pytest.mark.integration


@pytest.fixture
def served():
    scenario = load_scenario("bad-deploy")
    clock = ScaledClock(scenario.start, speed=4.0)
    world = World(scenario, clock=clock)
    with DrillServer(world) as server:
        yield world, clock, server.url


def ctl(url: str, *args: str):
    return CliRunner().invoke(cli, ["drill-ctl", "--url", url, *args])


def test_pause_speed_and_resume_move_the_drill_clock(served):
    world, clock, url = served
    paused = ctl(url, "pause")
    assert paused.exit_code == 0, paused.output
    assert "paused simulated time" in paused.output
    assert clock.speed == 0 and clock.now() == clock.now()
    frozen = clock.now()
    assert ctl(url, "pause").exit_code == 2  # already paused: said so, nothing changed

    changed = ctl(url, "speed", "10")
    assert changed.exit_code == 0 and "applies on resume" in changed.output
    assert clock.speed == 0 and clock.now() == frozen
    resumed = ctl(url, "resume")
    assert resumed.exit_code == 0 and "resumed simulated time at speed 10" in resumed.output
    assert clock.speed == 10
    state = httpx.get(f"{url}/drill/state", timeout=5).json()
    assert state["paused"] is False and state["speed"] == 10
    assert [e["text"] for e in state["trainer"]] == [
        "paused simulated time", "speed set to 10 (applies on resume)", "resumed simulated time at speed 10"]
    assert any(text == "Trainer: paused simulated time" for _, text in world.notes)


def test_injected_note_fact_and_outage_change_the_world_and_are_recorded(served):
    world, _clock, url = served
    assert ctl(url, "note", "The", "DBA", "says", "0042", "cannot", "be", "undone.").exit_code == 0
    assert world.notes[-1][1] == "The DBA says 0042 cannot be undone."

    fact = ctl(url, "fact", "data_corruption=true", "migration_name=0042_split")
    assert fact.exit_code == 0, fact.output
    assert world.facts["data_corruption"] is True and world.facts["migration_name"] == "0042_split"

    outage = ctl(url, "outage", "order-service", "--dependency", "tax-api.example.net", "--error-rate", "0.3")
    assert outage.exit_code == 0, outage.output
    assert world.outages["order-service"].dependency == "tax-api.example.net"
    assert world.facts["external_service_issue"] is True
    assert ctl(url, "outage", "order-service", "--recovered").exit_code == 0
    assert "order-service" not in world.outages

    logged = [text for _, text in world.trainer_log]
    assert logged[0] == "note: The DBA says 0042 cannot be undone."
    assert logged[1] == "facts: data_corruption=True, migration_name=0042_split"
    assert logged[2].startswith("outage of tax-api.example.net for order-service: active")


def test_bad_controls_are_refused_with_a_sentence(served):
    world, _clock, url = served
    unknown = ctl(url, "outage", "no-such-service")
    assert unknown.exit_code == 2 and "outage needs a service of this drill: order-service" in unknown.output
    bad_fact = ctl(url, "fact", "colour=blue")
    assert bad_fact.exit_code == 2 and "unknown fact 'colour'; the facts are data_corruption, " in bad_fact.output, bad_fact.output
    not_json = httpx.post(f"{url}/drill/control", content=b"{pause", timeout=5)
    assert not_json.status_code == 400 and "must be JSON" in not_json.json()["error"]
    assert httpx.get(f"{url}/drill/control", timeout=5).status_code == 405
    assert world.trainer_log == []  # nothing half-done


def test_drill_ctl_without_a_running_drill_says_how_to_start_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["drill-ctl", "pause"])
    assert result.exit_code == 2 and "no running drill found" in result.output


def test_time_cannot_be_steered_when_a_real_prometheus_scrapes_the_drill(served):
    world, clock, url = served
    world.time_locked = "a real Prometheus scrapes this drill on wall-clock time (--with-prometheus)"
    refused = ctl(url, "pause")
    assert refused.exit_code == 2 and "--with-prometheus" in refused.output
    assert clock.speed == 4.0 and world.trainer_log == []
    assert ctl(url, "note", "still fine").exit_code == 0  # a note does not touch time
