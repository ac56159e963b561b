"""Issue 8's screens on a real PostgreSQL (tests/integration/postgres_fixture.py)
and live drill worlds, through the real Session: the refusal to roll back
past an irreversible migration, the reversible three-step plan, and the data
corruption response with its backup picker."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from support import wait_for
import yaml

from postgres_fixture import PASSWORD, Postgres

from console import incident as incidents
from console.config import parse
from console.drill import runner
from console.drill.scenario import load_scenario
from console.procedures import StepStatus
from console.session import Session
from console.store import Store
from console.ui.app import RollbackConsoleApp, build_app
from console.ui.screens.confirm import ConfirmRollbackScreen
from console.ui.screens.corruption import CorruptionScreen, DeclareCorruptionScreen
from console.ui.screens.override import OverrideScreen
from console.ui.screens.database import MigrationBlockedScreen, MigrationRollbackScreen
from console.ui.screens.procedure import StepConfirmScreen

pytestmark = pytest.mark.integration

SPEED = 100.0
TIMEOUT = 60.0
SIZE = (140, 45)
DSN_ENV = "ROLLBACK_UI_TEST_DSN"
STATUS_SQL = "SELECT version, applied_at FROM schema_migrations ORDER BY applied_at DESC LIMIT 20"


@pytest.fixture
def drills(tmp_path: Path):
    started: list[tuple[runner.RunningDrill, Store]] = []

    def start(name: str, db: dict) -> tuple[runner.RunningDrill, Session]:
        running = runner.start(load_scenario(name), speed=SPEED, directory=tmp_path / f"drill-{len(started)}")
        store = Store(tmp_path / f"incidents-{len(started)}.db")
        started.append((running, store))
        data = yaml.safe_load(running.config_path.read_text())
        data["services"][0]["database"] = {"dsn_env": DSN_ENV, **db}
        data["refresh_interval"] = 0.5
        config = parse(data, str(running.config_path), running.config_path.parent)
        return running, Session(config, store, clock=running.world.clock, operator="trainee@drill")

    yield start
    for running, store in started:
        store.close()
        running.stop()


def image(running: runner.RunningDrill, namespace: str, name: str) -> str:
    with running.world.store.lock:
        deployment = running.world.store.get("deployments", namespace, name)
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def replicas(running: runner.RunningDrill, namespace: str, name: str) -> int:
    with running.world.store.lock:
        return running.world.store.get("deployments", namespace, name)["spec"]["replicas"]


def migrations_table(pg: Postgres, db: str, rows: list[tuple[str, str]]) -> None:
    pg.psql(db, "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL)")
    for version, applied_at in rows:
        pg.psql(db, f"INSERT INTO schema_migrations VALUES ('{version}', '{applied_at}')")


def screen_text(app: RollbackConsoleApp) -> str:
    return "\n".join(str(w.render()) for w in app.screen.query("Static"))


async def refreshed_with_migrations(pilot, app: RollbackConsoleApp, session: Session, service: str) -> None:
    await wait_for(pilot, lambda: service in app.views and session.migrations(service) is not None,
                   "the first refresh with the migration state")


async def run_step(pilot, app: RollbackConsoleApp, step: str, confirm: bool) -> None:
    """Enter on the highlighted step (the next one), confirm when it asks, wait for it to end."""
    screen = app.screen
    await wait_for(pilot, lambda: screen.preview is not None and screen.preview.step.id == step, f"step {step}")
    before = len(screen.outcomes)
    screen.query_one("#procedure-steps").focus()
    await pilot.press("enter")
    if confirm:
        await wait_for(pilot, lambda: isinstance(app.screen, StepConfirmScreen), f"the question of {step}")
        await pilot.press("y")
    await wait_for(pilot, lambda: len(screen.outcomes) > before, f"{step} to end", timeout=TIMEOUT * 2)
    outcome = screen.outcomes[-1]
    assert outcome.ok, f"{step}: {outcome.summary}"


# --- the irreversible migration ---------------------------------------------------------------


async def test_an_irreversible_migration_blocks_the_rollback_explains_and_offers_the_options(
    postgres, database, drills, monkeypatch
) -> None:
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database))
    running, session = drills("migration-applied", {
        "migration_status": {"sql": STATUS_SQL},
        "hotfix": {"url": "https://ci.example/pipelines/invoice-service"},
        "feature_flag": {"command": ["flagctl", "disable", "split-address"]},
        "schema_requirements": {"4.9.0": "0042_split_address"},
    })
    now = running.world.clock.now()
    migrations_table(postgres, database, [("0042_split_address", (now - timedelta(minutes=5)).isoformat())])
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed_with_migrations(pilot, app, session, "invoice-service")
        history = app.query_one("#history")
        await wait_for(pilot, lambda: history.row_count == 3, "the history")
        history.focus()
        history.move_cursor(row=history.get_row_index("1"))  # 4.8.0 predates the new schema
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MigrationBlockedScreen), "the refusal")
        text = screen_text(app)
        assert "could lose data" in text and "0042_split_address" in text and "data loss" in text
        assert "Option 1: Fix forward" in text and "https://ci.example/pipelines/invoice-service" in text
        assert "Option 2: Feature flag" in text and "flagctl disable split-address" in text
        assert "Option 3: Partial rollback" in text and "revision 2 (4.9.0)" in text
        # No way through without ticking the explicit override.
        assert app.screen.query_one("#override").disabled
        # Option 3: plan the partial rollback; it is not blocked, so the plan shows.
        await pilot.click("#option-partial")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the partial rollback plan")
        assert app.screen.plan.to_revision == 2 and app.screen.plan.to_versions == ("4.9.0",)
        await pilot.press("n")
        await pilot.pause()

        # The override: ticked, then pressed; recorded, then the ordinary plan.
        history.focus()
        history.move_cursor(row=history.get_row_index("1"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MigrationBlockedScreen), "the refusal again")
        app.screen.query_one("#override-ack").value = True
        await pilot.pause()
        assert not app.screen.query_one("#override").disabled
        await pilot.click("#override")
        # Then the gate's override dialog: Cancel focused, the reason typed.
        await wait_for(pilot, lambda: isinstance(app.screen, OverrideScreen), "the override dialog")
        assert app.screen.focused.id == "cancel" and app.screen.query_one("#override-go").disabled
        app.screen.query_one("#override-reason").value = "customers cannot check out; schema checked by hand"
        await pilot.pause()
        await pilot.click("#override-go")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the forced plan")
        assert app.screen.plan.to_revision == 1
        await wait_for(pilot, lambda: any("rollback override by" in e.text and "0042_split_address" in e.text
                                          and "schema checked by hand" in e.text for e in app.events),
                       "the override in the timeline")
        await pilot.press("n")
        await pilot.pause()
        assert image(running, "billing", "invoice-service").endswith(":5.0.0")


# --- the reversible migration -------------------------------------------------------------------


async def test_a_reversible_migration_runs_the_three_steps_in_order_each_shown_first(
    postgres, database, drills, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database))
    script = tmp_path / "down.sql"
    script.write_text("ALTER TABLE profiles DROP COLUMN nickname;\n"
                      "DELETE FROM schema_migrations WHERE version = '0017_add_nickname';\n")
    running, session = drills("reversible-migration", {
        "migration_status": {"sql": STATUS_SQL},
        "reversible": ["0017_add_nickname"],
        "migration_rollback": ["psql", "-X", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", str(script)],
        "verify": {"sql": "SELECT count(*) FROM profiles WHERE name IS NULL OR name = ''"},
    })
    now = running.world.clock.now()
    migrations_table(postgres, database, [("0017_add_nickname", (now - timedelta(minutes=3)).isoformat())])
    postgres.psql(database, "CREATE TABLE profiles (id int PRIMARY KEY, name text NOT NULL, nickname text)")
    postgres.psql(database, "INSERT INTO profiles VALUES (1, 'ada', NULL), (2, 'grace', 'amazing')")
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed_with_migrations(pilot, app, session, "profile-service")
        await wait_for(pilot, lambda: session.facts("profile-service").migration_reversible is True, "the facts")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, MigrationRollbackScreen), "the three-step plan")
        screen = app.screen
        await wait_for(pilot, lambda: screen.preview is not None, "the first preview")
        # Step 1 is shown before it runs: the exact request and the question.
        detail = str(screen.query_one("#step-detail").render())
        assert "1. Rollback application first" in detail and "PATCH /apis/apps/v1/namespaces/accounts" in detail
        assert "2.7.0" in screen.preview.confirmation
        # Step 2 cannot run before step 1.
        assert session.migration_rollback("profile-service").preview("migration_rollback").blocked

        await run_step(pilot, app, "app_rollback", confirm=True)
        assert image(running, "accounts", "profile-service").endswith(":2.7.0")
        await wait_for(pilot, lambda: screen.preview.step.id == "migration_rollback", "step 2 shown next")
        assert "psql" in str(screen.query_one("#step-detail").render()) and PASSWORD not in str(
            screen.query_one("#step-detail").render())
        await run_step(pilot, app, "migration_rollback", confirm=True)
        await run_step(pilot, app, "integrity_check", confirm=False)
        assert screen.outcomes[-1].summary == "count = 0"
        assert screen.outcomes[-1].state.finished
        assert postgres.psql(database, "SELECT count(*) FROM information_schema.columns "
                                       "WHERE table_name = 'profiles' AND column_name = 'nickname'") == "0"
        kinds = [incidents.payload(e).get("step") for e in session.events("profile-service")
                 if e.kind == "procedure.step.done"]
        assert kinds == ["app_rollback", "migration_rollback", "integrity_check"]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, MigrationRollbackScreen)


# --- the data-corruption response ------------------------------------------------------------


async def test_the_corruption_response_is_declared_then_guided_step_by_step(
    postgres, database, drills, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database))
    postgres.psql(database, "CREATE TABLE stock (sku text PRIMARY KEY, count int NOT NULL)")
    postgres.psql(database, "INSERT INTO stock SELECT 'sku-' || i, 10 + i FROM generate_series(1, 50) AS i")
    backups = tmp_path / "backups"
    backups.mkdir()
    dump = postgres.dump(database, backups / "backup_before_deploy.dump")
    postgres.psql(database, "UPDATE stock SET count = -count WHERE sku IN "
                            "(SELECT 'sku-' || i FROM generate_series(1, 40) AS i)")
    running, session = drills("data-corruption", {
        "assess_sql": "SELECT count(*) AS corrupted FROM stock WHERE count < 0",
        "verify": {"sql": "SELECT count(*) FROM stock WHERE count < 0"},
        "backups": {"dir": str(backups)},
    })
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, DeclareCorruptionScreen), "the declaration")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, CorruptionScreen), "the corruption response")
        assert session.facts("inventory-service").data_corruption
        await wait_for(pilot, lambda: session.escalation("inventory-service").level == 2, "escalation to level 2")
        screen = app.screen

        # A skip needs a reason: without one nothing is skipped.
        await wait_for(pilot, lambda: screen.preview is not None, "the first preview")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "needs a reason" in "\n".join(n.message for n in app._notifications)
        assert session.corruption_response("inventory-service").state().step("freeze").status is StepStatus.PENDING

        await run_step(pilot, app, "freeze", confirm=True)
        assert replicas(running, "shop", "inventory-service") == 0
        await run_step(pilot, app, "assess", confirm=False)
        assert screen.outcomes[-1].summary == "corrupted = 40"

        # The restore: the picker offers the dump, the question names the database and the dump.
        await wait_for(pilot, lambda: screen.preview.step.id == "restore", "the restore step")
        await wait_for(pilot, lambda: screen.query_one("#backup-select").display, "the backup picker")
        # Tab reaches the skip-reason box past the backup picker (and so does the keyboard user).
        reached = []
        for _ in range(12):
            await pilot.press("tab")
            reached.append(app.focused.id if app.focused else None)
            if reached[-1] == "skip-reason":
                break
        assert "skip-reason" in reached and "backup-select" in reached, reached
        assert screen.choice() == str(dump)
        assert f"database {database}" in screen.preview.confirmation
        assert "backup_before_deploy.dump" in screen.preview.confirmation
        assert PASSWORD not in screen.preview.calls[0].target
        await run_step(pilot, app, "restore", confirm=True)
        assert postgres.psql(database, "SELECT count(*) FROM stock WHERE count < 0") == "0"
        await run_step(pilot, app, "verify", confirm=False)  # step 4 (the fix script) is not needed
        await run_step(pilot, app, "resume", confirm=True)
        assert replicas(running, "shop", "inventory-service") == 3
        state = screen.outcomes[-1].state
        assert state.finished and state.step("fix").status is StepStatus.NOT_NEEDED
        assert PASSWORD not in "\n".join(e.text for e in session.events("inventory-service"))


async def test_a_failed_restore_leaves_the_response_resumable(postgres, database, drills, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database))
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "broken.dump").write_bytes(b"not a dump")
    running, session = drills("data-corruption", {"backups": {"dir": str(backups)}})
    response = session.corruption_response("inventory-service")
    response.skip("freeze", "writes already paused at the queue")
    response.skip("assess", "the damage is known from the support tickets")
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        await pilot.press("C")  # started already: no second declaration
        await wait_for(pilot, lambda: isinstance(app.screen, CorruptionScreen), "the corruption response")
        screen = app.screen
        await wait_for(pilot, lambda: screen.preview is not None and screen.preview.step.id == "restore", "restore")
        await wait_for(pilot, lambda: screen.choice() is not None, "the backup choice")
        screen.query_one("#procedure-steps").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StepConfirmScreen), "the restore question")
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(screen.outcomes), "the restore to fail", timeout=TIMEOUT * 2)
        assert not screen.outcomes[-1].ok and "The restore failed" in screen.outcomes[-1].summary
        state = session.corruption_response("inventory-service").state()
        assert state.stopped is not None and state.stopped.id == "restore"
        # Still the current step: it can be run again (or the fix script chosen instead).
        await wait_for(pilot, lambda: screen.preview.step.id == "restore" and
                       screen.state.step("restore").status is StepStatus.FAILED, "the failed step shown")
        assert "✗" in str(screen.query_one("#procedure-steps").get_option_at_index(2).prompt)
