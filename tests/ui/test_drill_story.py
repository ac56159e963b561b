"""A drill in the console, as `rollback-console drill` sets it up: the real
world served on 127.0.0.1, the real Session on the config the drill writes,
its incidents in a drill record under XDG_STATE_HOME. The header says DRILL,
the story reaches the screen and the timeline, the debrief comes once the
scenario's time is up and the signals settle, and `export --drill` reads the
record back after the world is gone."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import yaml
from click.testing import CliRunner
from support import wait_for

from console import locations
from console.cli import cli
from console.clock import ScaledClock
from console.config import load
from console.drill import runner
from console.drill.record import DrillLink, create_record, drills_dir, load_record
from console.drill.scenario import SCENARIO_DIR, parse_scenario
from console.drill.server import DrillServer
from console.drill.world import World
from console.model import Action
from console.session import Session
from console.store import Store
from console.ui.app import build_app
from console.ui.messages import RollbackFinished
from console.ui.screens.confirm import ConfirmRollbackScreen
from console.ui.screens.debrief import DebriefScreen
from console.ui.screens.note import NoteScreen

pytestmark = pytest.mark.integration

SIZE = (140, 45)
NOTE = "Support: 30 tickets about failed checkouts in the last minute."


def bad_deploy_with_a_note():
    data = yaml.safe_load((SCENARIO_DIR / "bad-deploy.yaml").read_text())
    data["timeline"] = [{"at": "20s", "note": NOTE}]
    return parse_scenario(data)


def toasts(app) -> str:
    return " ".join(f"{n.title}: {n.message}" for n in app._notifications)


def timeline_texts(store: Store) -> list[tuple[str, str]]:
    return [(e.actor, e.text) for r in store.incidents() for e in store.events(r.id, newest_first=False)]


async def test_a_drill_is_marked_tells_its_story_debriefs_and_keeps_its_record(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    scenario = bad_deploy_with_a_note()
    clock = ScaledClock(scenario.start, 20.0)
    world = World(scenario, clock=clock)
    with DrillServer(world) as server:
        monkeypatch.setenv(runner.DRILL_SLACK_ENV, runner.slack_webhook_url(server.url))
        _, config_path = runner.write_configs(scenario, server.url, tmp_path / "drill")
        config = load(config_path).model_copy(update={"refresh_interval": 0.2})
        record = create_record(scenario, world.start, 20.0, datetime.now(timezone.utc))
        assert record.directory.parent == drills_dir() == tmp_path / "state" / "rollback-console" / "drills"
        store = Store(record.store_path)
        session = Session(config, store, clock=clock, operator="trainee@drill")
        session.drill_link = DrillLink(world, record)
        messages: list[object] = []
        app = build_app(session, animate=False)
        try:
            async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
                assert "DRILL · bad-deploy" in str(app.query_one("#title-drill").render())
                # The story: the description at the start, the timed note when it happens.
                await wait_for(pilot, lambda: "DRILL: bad-deploy: order-service 1.2.3" in toasts(app), "the description")
                await wait_for(pilot, lambda: f"DRILL: {NOTE}" in toasts(app), "the note at 20 s")
                told = [text for actor, text in timeline_texts(store) if actor == "drill"]
                assert told[0].startswith("DRILL: bad-deploy: order-service 1.2.3 was deployed")
                assert f"DRILL: {NOTE}" in told

                await wait_for(pilot, lambda: app.views.get("order-service") is not None
                               and app.views["order-service"].decision.action == Action.ROLLBACK_NOW, "ROLLBACK NOW")
                await pilot.press("r")
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan")
                await pilot.press("y")
                await wait_for(pilot, lambda: any(isinstance(m, RollbackFinished) for m in messages), "the rollback",
                               timeout=120)
                assert not isinstance(app.screen, DebriefScreen)  # before `by`: no debrief yet

                clock.advance(300)  # past expect.by (5m)
                await wait_for(pilot, lambda: isinstance(app.screen, DebriefScreen), "the debrief", timeout=120)
                shown = "\n".join(app.screen.lines)
                assert "**Expected:** rollback now by t+5 min 00 s" in shown
                assert "**Decided:** rollback now at t+" in shown and "(right)" in shown
                await pilot.press("escape")
                await wait_for(pilot, lambda: not isinstance(app.screen, DebriefScreen), "the debrief closed")

                # The trainer key: pause and resume simulated time, a bad command refused.
                for command, check, what in (
                    ("pause", lambda: clock.speed == 0, "the pause"),
                    ("warp 9", lambda: "is not a trainer command" in toasts(app), "the refusal"),
                    ("resume", lambda: clock.speed == 20.0, "the resume"),
                ):
                    await pilot.press("T")
                    await wait_for(pilot, lambda: isinstance(app.screen, NoteScreen), "the trainer prompt")
                    await pilot.press(*("space" if c == " " else c for c in command), "enter")
                    await wait_for(pilot, check, what)
                assert [text for _, text in world.trainer_log] == ["paused simulated time", "resumed simulated time at speed 20"]
        finally:
            store.close()

    # The record stays after the world is gone, in the drill's own store.
    assert not locations.default_store_path().exists()
    kept = load_record(None, latest=True)
    assert kept.id == record.id
    debriefed = kept.data["debrief"]
    assert debriefed["decided"]["action"] == "rollback_now"
    assert debriefed["points"]["decision"] == 50 and debriefed["points"]["on_time"] == 20
    assert debriefed["score"] == 50 + 20 + debriefed["points"]["runbook_steps"]

    result = CliRunner().invoke(cli, ["export", "--drill", "--latest", "--format", "json"])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.output)
    assert exported["mark"] == "DRILL" and exported["scenario"] == "bad-deploy"
    assert exported["debrief"]["score"] == debriefed["score"]
    [only] = exported["incidents"]
    assert only["drill"] == "bad-deploy" and only["rollback"]["status"] == "completed"
    assert any(e["actor"] == "drill" and NOTE in e["text"] for e in only["timeline"])

    markdown = CliRunner().invoke(cli, ["export", "--drill", record.id, "--format", "md"])
    assert markdown.exit_code == 0, markdown.output
    assert markdown.output.startswith(f"# DRILL bad-deploy ({record.id})")
    assert f"**Score: {debriefed['score']} / 100**" in markdown.output
    assert "## DRILL bad-deploy: Incident" in markdown.output

    # An incident exported from the drill's store by path is marked too.
    by_path = CliRunner().invoke(cli, ["export", "--latest", "--store", str(record.store_path)])
    assert by_path.exit_code == 0, by_path.output
    assert by_path.output.startswith("# DRILL bad-deploy: Incident ")

    missing = CliRunner().invoke(cli, ["export", "--drill", "no-such-drill"])
    assert missing.exit_code == 2 and "There is no drill no-such-drill" in missing.output


def test_rollback_console_drill_keeps_its_record_and_debriefs_at_quit(tmp_path, monkeypatch) -> None:
    """The `drill` command itself, its TUI driven headless (the real app and session)."""
    import asyncio

    import console.cli as cli_module

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    seen: dict[str, object] = {}

    def headless(session, theme):
        async def drive() -> None:
            app = build_app(session, theme=theme, animate=False)
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(pilot, lambda: "DRILL: bad-deploy:" in toasts(app), "the description")
                # A trainer in a second terminal finds the running drill on its own.
                told = CliRunner().invoke(cli, ["drill-ctl", "note", "The", "on-call", "lead", "joined."])
                seen["ctl"] = told.output
                await wait_for(pilot, lambda: "DRILL: The on-call lead joined." in toasts(app), "the trainer's note")
                seen["running"] = load_record(None, latest=True).data["server_url"]
                await pilot.press("q")

        asyncio.run(drive())

    monkeypatch.setattr(cli_module, "_run_tui", headless)
    result = CliRunner().invoke(cli, ["drill", "bad-deploy", "--speed", "20"])
    assert result.exit_code == 0, result.output
    assert "note: The on-call lead joined." in str(seen["ctl"])
    assert str(seen["running"]).startswith("http://127.0.0.1:")
    assert "DRILL bad-deploy: debrief" in result.output and "**Score: " in result.output
    kept = load_record(None, latest=True)
    assert kept.data["server_url"] is None  # over: nothing left to control
    assert kept.data["debrief"]["decided"]["action"] is None  # quit without deciding
    assert kept.data["trainer"][0]["text"] == "note: The on-call lead joined."
    assert f"rollback-console export --drill {kept.id}" in result.output
    assert kept.store_path.exists() and not locations.default_store_path().exists()
