"""The runbook's Database Rollback Considerations against a real PostgreSQL
(tests/integration/postgres_fixture.py) and the drill world's Kubernetes API:
migration awareness, the reversible-migration plan, the refusal to roll back
past an irreversible migration, and the data-corruption response."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from postgres_fixture import PASSWORD, Postgres

from console import incident as incidents
from console.config import parse
from console.database import Database, DatabaseError, parse_dsn, pg_environment, run_command
from console.model import SCHEMA_ANNOTATION, Action
from console.procedures import ProcedureError, StepStatus
from console.redact import redact
from console.rollback import EXIT_DO_NOT_ROLL_BACK, EXIT_FAILED, EXIT_OK, run_headless_rollback
from console.session import Session
from console.store import Store

pytestmark = pytest.mark.integration

SPEED = 100.0
DSN_ENV = "ROLLBACK_TEST_DSN"


# --- helpers -----------------------------------------------------------------------


@pytest.fixture
def drills():
    """Start drill worlds by scenario name; all are stopped at the end."""
    from console.drill import runner
    from console.drill.scenario import load_scenario

    running = []

    def start(name: str):
        drill = runner.start(load_scenario(name), speed=SPEED)
        running.append(drill)
        return drill

    yield start
    for drill in running:
        drill.stop()


def _session(drill, tmp_path: Path, database: dict) -> Session:
    data = yaml.safe_load(drill.config_path.read_text())
    data["services"][0]["database"] = {"dsn_env": DSN_ENV, **database}
    config = parse(data, str(drill.config_path), drill.config_path.parent)
    return Session(config, Store(tmp_path / "incidents.db"), clock=drill.world.clock, operator="tester@test")


def _refresh(session: Session, service: str):
    async def once():
        try:
            return (await session.refresh(only=service))[0]
        finally:
            await session.aclose()

    return asyncio.run(once())


def _migrations_table(pg: Postgres, db: str, rows: list[tuple[str, str]]) -> None:
    pg.psql(db, "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL)")
    for version, applied_at in rows:
        pg.psql(db, f"INSERT INTO schema_migrations VALUES ('{version}', '{applied_at}')")


STATUS_SQL = "SELECT version, applied_at FROM schema_migrations ORDER BY applied_at DESC LIMIT 20"


def _iso(moment) -> str:
    return moment.isoformat()


def _timeline_text(session: Session, service: str) -> str:
    return "\n".join(f"{e.kind} {e.actor} {e.text} {e.data}" for e in session.events(service))


def _deployment(drill, namespace: str, name: str) -> dict:
    return drill.world.store.get("deployments", namespace, name)


# --- the source ----------------------------------------------------------------------


def test_dsn_becomes_pg_environment_without_the_password_on_the_command_line():
    env = pg_environment("postgresql://app:p%40ss@db.example:6432/orders?sslmode=require")
    assert env["PGUSER"] == "app" and env["PGPASSWORD"] == "p@ss" and env["PGHOST"] == "db.example"
    assert env["PGPORT"] == "6432" and env["PGDATABASE"] == "orders" and env["PGSSLMODE"] == "require"
    assert parse_dsn("host=db dbname=orders password='a b\\'c'") == {"host": "db", "dbname": "orders", "password": "a b'c"}
    with pytest.raises(DatabaseError, match="cannot pass on"):
        pg_environment("host=db frobnicate=1")
    assert "hunter2" not in redact("PGPASSWORD=hunter2 psql -X")


def test_a_command_that_hangs_is_stopped_at_its_timeout():
    result = run_command([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.3)
    assert not result.ok and "did not finish within 0.3 s" in result.failure()
    assert result.seconds < 5


def test_migration_state_from_sql_and_from_a_command(postgres, database, monkeypatch):
    _migrations_table(postgres, database, [("0041_add_index", "2024-07-01T10:00:00Z"),
                                           ("0042_split_address", "2024-07-09T10:56:00Z")])
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database))
    config = parse({"services": [{"name": "svc", "database": {
        "dsn_env": DSN_ENV, "migration_status": {"sql": STATUS_SQL}, "reversible": ["0041_add_index"]}}]})
    state = Database("svc", config.services[0].database).migration_state()
    assert state.error is None
    assert [m.name for m in state.migrations] == ["0042_split_address", "0041_add_index"]
    assert [m.reversible for m in state.migrations] == [None, True]
    assert state.newest.applied_at.isoformat() == "2024-07-09T10:56:00+00:00"

    # The same through a command (argv, no shell) that prints JSON.
    script = ("import json; print(json.dumps([{'name': '0042_split_address', 'applied_at': '2024-07-09T10:56:00Z',"
              " 'reversible': False}]))")
    config = parse({"services": [{"name": "svc", "database": {"migration_status": {"command": [sys.executable, "-c", script]}}}]})
    state = Database("svc", config.services[0].database).migration_state()
    assert state.migrations[0].name == "0042_split_address" and state.migrations[0].reversible is False


def test_a_failing_query_is_a_sentence_and_never_shows_the_password(postgres, database, monkeypatch):
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database).replace(PASSWORD, "wrong-" + PASSWORD))
    config = parse({"services": [{"name": "svc", "database": {"dsn_env": DSN_ENV, "migration_status": {"sql": STATUS_SQL}}}]})
    db = Database("svc", config.services[0].database)
    state = db.migration_state()
    assert state.error and "Cannot read the migration state of svc" in state.error
    assert "password authentication failed" in state.error
    assert PASSWORD not in state.error
    shown = db.call(db.query_argv("SELECT 1")).target
    assert PASSWORD not in shown and "psql" in shown


# --- migration awareness and the irreversible migration ----------------------------------


def _irreversible_setup(postgres, database, drills, tmp_path, monkeypatch, requirements=None):
    drill = drills("migration-applied")  # invoice-service 4.8.0 (1), 4.9.0 (2), 5.0.0 (3, current)
    now = drill.world.clock.now()
    _migrations_table(postgres, database, [
        ("0041_add_index", _iso(now - timedelta(days=20))),
        ("0042_split_address", _iso(now - timedelta(minutes=5))),  # a pre-deploy job, after 4.9.0 went out
    ])
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database))
    session = _session(drill, tmp_path, {
        "migration_status": {"sql": STATUS_SQL},
        "reversible": ["0041_add_index"],
        "hotfix": {"url": "https://ci.example/pipelines/invoice-service"},
        "feature_flag": {"command": ["flagctl", "disable", "split-address"]},
        "schema_requirements": requirements or {},
    })
    return drill, session


def test_a_migration_applied_since_the_deploy_becomes_a_fact_and_blocks_a_plain_rollback(
    postgres, database, drills, tmp_path, monkeypatch
):
    drill, session = _irreversible_setup(postgres, database, drills, tmp_path, monkeypatch)
    view = _refresh(session, "invoice-service")
    facts = session.facts("invoice-service")
    # Not listed as reversible: unknown, read as not reversible (the safe reading).
    assert facts.migration_applied and facts.migration_reversible is None
    assert facts.migration_name.startswith("0042_split_address (applied 2024-07-09 10:55 UTC)")
    assert "0041" not in facts.migration_name  # applied before the previous deploy
    assert view.decision.action is Action.FIX_FORWARD
    timeline = _timeline_text(session, "invoice-service")
    assert "Fact: migration name = 0042_split_address" in timeline and "console" in timeline

    out: list[str] = []
    code = run_headless_rollback(session, "invoice-service", reason="errors", confirm=None, out=out.append)
    text = "\n".join(out)
    assert code == EXIT_DO_NOT_ROLL_BACK
    assert "data loss" in text
    assert "Option 1: Fix forward" in text and "https://ci.example/pipelines/invoice-service" in text
    assert "Option 2: Feature flag" in text and "flagctl disable split-address" in text
    assert "Option 3: Partial rollback" in text and "schema_requirements" in text
    assert "5.0.0" in _deployment(drill, "billing", "invoice-service")["spec"]["template"]["spec"]["containers"][0]["image"]

    # --force overrides, and says what it risks.
    out.clear()
    session = _session(drill, tmp_path, {"migration_status": {"sql": STATUS_SQL}})
    code = run_headless_rollback(session, "invoice-service", reason="errors", confirm=None, force=True, out=out.append)
    assert code == EXIT_OK, "\n".join(out)
    assert any(line.startswith("WARNING (--force)") and "data loss" in line for line in out)
    assert "4.9.0" in _deployment(drill, "billing", "invoice-service")["spec"]["template"]["spec"]["containers"][0]["image"]


def test_a_partial_rollback_to_a_revision_that_works_with_the_new_schema_is_allowed(
    postgres, database, drills, tmp_path, monkeypatch
):
    drill, session = _irreversible_setup(postgres, database, drills, tmp_path, monkeypatch,
                                         requirements={"4.9.0": "0042_split_address", "4.8.0": "0040_init"})
    _refresh(session, "invoice-service")
    # Revision 1 predates the migration: refused, and option 3 names revision 2.
    out: list[str] = []
    session = _session(drill, tmp_path, {"migration_status": {"sql": STATUS_SQL},
                                         "schema_requirements": {"4.9.0": "0042_split_address"}})
    assert run_headless_rollback(session, "invoice-service", reason="errors", to_revision=1, confirm=None,
                                 out=out.append) == EXIT_DO_NOT_ROLL_BACK
    assert any("roll back to revision 2 (4.9.0), which works with 0042_split_address" in line for line in out)
    # Revision 2 needs the new schema: the runbook's option 3, allowed without --force.
    out.clear()
    session = _session(drill, tmp_path, {"migration_status": {"sql": STATUS_SQL},
                                         "schema_requirements": {"4.9.0": "0042_split_address"}})
    code = run_headless_rollback(session, "invoice-service", reason="errors", confirm=None, out=out.append)
    assert code == EXIT_OK, "\n".join(out)
    assert any("Partial rollback" in line for line in out)
    assert "4.9.0" in _deployment(drill, "billing", "invoice-service")["spec"]["template"]["spec"]["containers"][0]["image"]


def test_a_schema_annotation_on_a_revision_marks_the_partial_rollback_target(
    postgres, database, drills, tmp_path, monkeypatch
):
    drill, session = _irreversible_setup(postgres, database, drills, tmp_path, monkeypatch)
    # 4.9.0 was released marked as working with the new schema (no schema_requirements in the config).
    store = drill.world.store
    [rs] = [rs for rs in store.list("replicasets", "billing")[0]
            if rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision") == "2"]
    rs["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})[SCHEMA_ANNOTATION] = \
        "0042_split_address"
    store.update("replicasets", "billing", rs)
    view = _refresh(session, "invoice-service")
    assert [(r.number, r.schema) for r in view.snapshot.history] == [(3, None), (2, "0042_split_address"), (1, None)]

    # Revision 1 predates the migration: refused, and option 3 names revision 2 (the UI's check too).
    check = session.rollback_check("invoice-service", 1)
    assert check.blocked and check.options[2].to_revision == 2
    out: list[str] = []
    assert run_headless_rollback(session, "invoice-service", reason="errors", to_revision=1, confirm=None,
                                 out=out.append) == EXIT_DO_NOT_ROLL_BACK
    # The previous revision is marked as working with the new schema: the partial rollback goes ahead.
    out.clear()
    code = run_headless_rollback(session, "invoice-service", reason="errors", confirm=None, out=out.append)
    assert code == EXIT_OK, "\n".join(out)
    assert any("Partial rollback" in line for line in out)
    assert "4.9.0" in _deployment(drill, "billing", "invoice-service")["spec"]["template"]["spec"]["containers"][0]["image"]


def test_an_unreadable_migration_state_blocks_a_rollback_until_forced(
    postgres, database, drills, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from console.cli import cli

    drill = drills("migration-applied")
    # No schema_migrations table: the status query fails.
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    session = _session(drill, tmp_path, {"migration_status": {"sql": STATUS_SQL}})
    view = _refresh(session, "invoice-service")
    assert any("Cannot read the migration state of invoice-service" in e for e in view.snapshot.errors)

    # The console's confirmation path: blocked, with why.
    check = session.rollback_check("invoice-service")
    assert check.blocked and check.migration is None
    assert check.explanation.startswith("Cannot read the migration state of invoice-service: The query against")
    assert "schema_migrations" in check.explanation and "does not exist" in check.explanation
    assert "may have been applied since the deploy" in check.explanation and "lose data" in check.explanation
    assert [o.title.split(":")[0] for o in check.options] == ["Option 1", "Option 2", "Option 3"]
    assert check.options[2].to_revision is None and PASSWORD not in check.explanation

    # Headless: refused (exit 3), a dry run too, with the sentence and the way past it.
    data = yaml.safe_load(drill.config_path.read_text())
    data["services"][0]["database"] = {"dsn_env": DSN_ENV, "migration_status": {"sql": STATUS_SQL}}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(data))
    for extra in (["--dry-run"], ["--yes"]):
        result = CliRunner().invoke(cli, ["rollback", "invoice-service", "--config", str(config_file),
                                          "--reason", "errors", *extra])
        assert result.exit_code == EXIT_DO_NOT_ROLL_BACK, result.output
        assert "Not rolling back invoice-service to 4.9.0:\n  - Cannot read the migration state of invoice-service" \
            in result.output
        assert "Pass --force to roll back anyway" in result.output
    assert "5.0.0" in _deployment(drill, "billing", "invoice-service")["spec"]["template"]["spec"]["containers"][0]["image"]

    out: list[str] = []
    session = _session(drill, tmp_path, {"migration_status": {"sql": STATUS_SQL}})
    code = run_headless_rollback(session, "invoice-service", reason="errors", confirm=None, force=True, out=out.append)
    assert code == EXIT_OK, "\n".join(out)
    assert any(line.startswith("WARNING (--force): Cannot read the migration state") for line in out)
    assert "4.9.0" in _deployment(drill, "billing", "invoice-service")["spec"]["template"]["spec"]["containers"][0]["image"]
    timeline = _timeline_text(session, "invoice-service")
    assert "invoice-service: rollback override by" in timeline and "(reason: errors)" in timeline
    assert "overriding: Cannot read the migration state of invoice-service" in timeline


# --- the reversible migration ---------------------------------------------------------------


def _reversible_setup(postgres, database, drills, tmp_path, monkeypatch, rollback_sql: str):
    drill = drills("reversible-migration")  # profile-service 2.6.0 (1), 2.7.0 (2), 2.8.0 (3, current)
    now = drill.world.clock.now()
    _migrations_table(postgres, database, [("0017_add_nickname", _iso(now - timedelta(minutes=3)))])
    postgres.psql(database, "CREATE TABLE profiles (id int PRIMARY KEY, name text NOT NULL, nickname text)")
    postgres.psql(database, "INSERT INTO profiles VALUES (1, 'ada', NULL), (2, 'grace', 'amazing')")
    script = tmp_path / "down.sql"
    script.write_text(rollback_sql)
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database))
    session = _session(drill, tmp_path, {
        "migration_status": {"sql": STATUS_SQL},
        "reversible": ["0017_add_nickname"],
        # The DSN reaches the command as PG* variables, never on its command line.
        "migration_rollback": ["psql", "-X", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", str(script)],
        "verify": {"sql": "SELECT count(*) FROM profiles WHERE name IS NULL OR name = ''"},
    })
    return drill, session


DOWN_MIGRATION = (
    "ALTER TABLE profiles DROP COLUMN nickname;\n"
    "DELETE FROM schema_migrations WHERE version = '0017_add_nickname';\n"
)


def test_the_reversible_plan_runs_application_then_migration_then_integrity_check(
    postgres, database, drills, tmp_path, monkeypatch
):
    drill, session = _reversible_setup(postgres, database, drills, tmp_path, monkeypatch, DOWN_MIGRATION)
    view = _refresh(session, "profile-service")
    assert session.facts("profile-service").migration_reversible is True
    # A reversible migration does not block: the runbook's order is in its reason.
    assert view.decision.action is not Action.FIX_FORWARD
    assert any("roll back the application first, then the migration" in str(r) for r in view.decision.reasons)

    out: list[str] = []
    code = run_headless_rollback(session, "profile-service", reason="9 % errors", confirm=None, out=out.append)
    assert code == EXIT_OK, "\n".join(out)
    image = _deployment(drill, "accounts", "profile-service")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":2.7.0")
    assert postgres.psql(database, "SELECT count(*) FROM information_schema.columns "
                                   "WHERE table_name = 'profiles' AND column_name = 'nickname'") == "0"
    assert postgres.psql(database, "SELECT count(*) FROM schema_migrations") == "0"

    # Each step shown before it ran, in the runbook's order, each recorded.
    steps = [line for line in out if line.startswith("Step ")]
    assert steps == ["Step 1. Rollback application first", "Step 2. Then rollback migration",
                     "Step 3. Verify data integrity"]
    assert out.index(steps[1]) + 1 < len(out) and "psql" in out[out.index(steps[1]) + 1]
    kinds = [(e.kind, incidents.payload(e).get("step")) for e in session.events("profile-service")
             if e.kind.startswith("procedure.") or e.kind == incidents.ROLLBACK_COMPLETED]
    assert kinds == [
        ("procedure.step.started", "app_rollback"), ("rollback.completed", None), ("procedure.step.done", "app_rollback"),
        ("procedure.step.started", "migration_rollback"), ("procedure.step.done", "migration_rollback"),
        ("procedure.step.started", "integrity_check"), ("procedure.step.done", "integrity_check"),
    ]
    assert PASSWORD not in _timeline_text(session, "profile-service")


def test_a_failing_migration_rollback_stops_the_plan_and_escalates_to_level_2(
    postgres, database, drills, tmp_path, monkeypatch
):
    drill, session = _reversible_setup(postgres, database, drills, tmp_path, monkeypatch,
                                       "ALTER TABLE profiles DROP COLUMN no_such_column;\n")
    _refresh(session, "profile-service")
    out: list[str] = []
    code = run_headless_rollback(session, "profile-service", reason="errors", confirm=None, out=out.append)
    assert code == EXIT_FAILED
    state = session.migration_rollback("profile-service").state()
    assert state.step("app_rollback").status is StepStatus.DONE
    assert state.stopped is not None and state.stopped.id == "migration_rollback"
    assert "no_such_column" in state.stopped.error and "does not exist" in state.stopped.output
    assert state.step("integrity_check").status is StepStatus.PENDING  # never ran
    incident = incidents.rebuild(session.incident_id("profile-service"), session.events("profile-service"))
    assert incident.escalated_to == 2
    assert any("escalated to level 2" in line for line in out)
    # Nothing changed in the database: the script ran in one transaction.
    assert postgres.psql(database, "SELECT count(*) FROM schema_migrations") == "1"


# --- the data-corruption response -------------------------------------------------------------


def _corruption_setup(postgres, database, drills, tmp_path, monkeypatch):
    drill = drills("data-corruption")  # inventory-service, namespace shop, 3 replicas
    postgres.psql(database, "CREATE TABLE stock (sku text PRIMARY KEY, count int NOT NULL)")
    postgres.psql(database, "INSERT INTO stock SELECT 'sku-' || i, 10 + i FROM generate_series(1, 50) AS i")
    backups = tmp_path / "backups"
    backups.mkdir()
    dump = postgres.dump(database, backups / "backup_before_deploy.dump")
    # 3.1.0 applies reservations twice: 40 counts go negative.
    postgres.psql(database, "UPDATE stock SET count = -count WHERE sku IN (SELECT 'sku-' || i FROM generate_series(1, 40) AS i)")
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database))
    session = _session(drill, tmp_path, {
        "assess_sql": "SELECT count(*) AS corrupted FROM stock WHERE count < 0",
        "verify": {"sql": "SELECT count(*) FROM stock WHERE count < 0"},
        "backups": {"dir": str(backups)},
        "fix_script": str(tmp_path / "fix.sql"),
    })
    return drill, session, dump


def test_corrupted_rows_are_counted_restored_verified_and_the_service_resumes(
    postgres, database, drills, tmp_path, monkeypatch
):
    drill, session, dump = _corruption_setup(postgres, database, drills, tmp_path, monkeypatch)
    response = session.corruption_response("inventory-service")

    # Steps run in order: no restore before writes are frozen.
    with pytest.raises(ProcedureError, match="cannot run before step 1. IMMEDIATELY stop writes"):
        response.run("restore", choice=str(dump))

    preview = response.preview("freeze")
    assert "0 replicas" in preview.confirmation and preview.calls[0].target.endswith("/inventory-service/scale")
    outcome = session.freeze_writes("inventory-service")
    assert outcome.ok, outcome.summary
    assert _deployment(drill, "shop", "inventory-service")["spec"]["replicas"] == 0
    assert session.platform("inventory-service").health().ready == 0
    assert outcome.state.frozen_replicas == 3

    outcome = response.run("assess")
    assert outcome.ok and outcome.summary == "corrupted = 40" and "corrupted\n40" in outcome.output.replace(" | ", "|")

    # A restart: a new session on the same store resumes where the timeline says.
    session = _session(drill, tmp_path, {
        "assess_sql": "SELECT count(*) AS corrupted FROM stock WHERE count < 0",
        "verify": {"sql": "SELECT count(*) FROM stock WHERE count < 0"},
        "backups": {"dir": str(dump.parent)},
    })
    response = session.corruption_response("inventory-service")
    state = response.state()
    assert state.current.id == "restore" and state.frozen_replicas == 3
    assert [b.name for b in response.backups()] == ["backup_before_deploy.dump"]

    preview = response.preview("restore", choice=str(dump))
    assert f"database {database}" in preview.confirmation and "backup_before_deploy.dump" in preview.confirmation
    assert "pg_restore" in preview.calls[0].target and PASSWORD not in preview.calls[0].target

    # A restore from a broken dump fails and leaves the procedure at step 3, resumable.
    broken = dump.parent / "broken.dump"
    broken.write_bytes(b"not a dump")
    outcome = response.run("restore", choice=str(broken))
    assert not outcome.ok and "The restore failed" in outcome.summary
    assert outcome.state.stopped.id == "restore"
    assert postgres.psql(database, "SELECT count(*) FROM stock WHERE count < 0") == "40"

    outcome = response.run("restore", choice=str(dump))
    assert outcome.ok, outcome.summary
    assert postgres.psql(database, "SELECT count(*) FROM stock WHERE count < 0") == "0"
    assert outcome.state.step("fix").status is StepStatus.NOT_NEEDED

    outcome = response.run("verify")
    assert outcome.ok and outcome.summary == "count = 0"

    outcome = session.resume_writes("inventory-service")
    assert outcome.ok, outcome.summary
    assert _deployment(drill, "shop", "inventory-service")["spec"]["replicas"] == 3
    assert session.platform("inventory-service").health().ready == 3
    assert outcome.state.finished and outcome.state.frozen_replicas is None

    incident = incidents.rebuild(session.incident_id("inventory-service"), session.events("inventory-service"))
    assert incident.escalated_to == 2 and not incident.writes_frozen
    assert incident.facts.data_corruption and session.facts("inventory-service").data_corruption
    timeline = _timeline_text(session, "inventory-service")
    assert PASSWORD not in timeline
    assert "Writes frozen: scaled to 0 (was 3 replicas)" in timeline


def test_a_step_is_never_skipped_silently_and_a_fix_script_can_replace_the_restore(
    postgres, database, drills, tmp_path, monkeypatch
):
    drill, session, dump = _corruption_setup(postgres, database, drills, tmp_path, monkeypatch)
    (tmp_path / "fix.sql").write_text("UPDATE stock SET count = -count WHERE count < 0;\n")
    response = session.corruption_response("inventory-service")
    with pytest.raises(ProcedureError, match="needs a reason"):
        response.skip("freeze", "  ")
    response.skip("freeze", "the database is read-only already")
    assert response.run("assess").ok
    outcome = response.run("fix")
    assert outcome.ok, outcome.summary
    state = outcome.state
    assert state.step("restore").status is StepStatus.NOT_NEEDED
    assert state.step("freeze").status is StepStatus.SKIPPED
    assert state.step("freeze").reason == "the database is read-only already"
    assert response.run("verify").ok
    outcome = response.run("resume")
    assert outcome.ok and "nothing to scale" in outcome.summary
    assert _deployment(drill, "shop", "inventory-service")["spec"]["replicas"] == 3
    assert "skipped (reason: the database is read-only already)" in _timeline_text(session, "inventory-service")


# --- the headless commands ---------------------------------------------------------------------


def test_the_headless_commands_show_the_migrations_and_step_through_the_response(
    postgres, database, drills, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from console.cli import cli

    drill = drills("migration-applied")
    now = drill.world.clock.now()
    _migrations_table(postgres, database, [("0042_split_address", _iso(now - timedelta(minutes=5)))])
    postgres.psql(database, "CREATE TABLE invoices (id int, address text)")
    postgres.psql(database, "INSERT INTO invoices VALUES (1, NULL), (2, 'x')")
    monkeypatch.setenv(DSN_ENV, postgres.dsn(database))
    data = yaml.safe_load(drill.config_path.read_text())
    data["services"][0]["database"] = {
        "dsn_env": DSN_ENV, "migration_status": {"sql": STATUS_SQL},
        "assess_sql": "SELECT count(*) AS missing FROM invoices WHERE address IS NULL",
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(data))
    runner = CliRunner()

    result = runner.invoke(cli, ["db", "status", "invoice-service", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert "0042_split_address (applied" in result.output and "reversibility unknown" in result.output
    assert "Option 3: Partial rollback" in result.output and PASSWORD not in result.output

    result = runner.invoke(cli, ["corruption", "invoice-service", "--config", str(config_file), "--step", "assess"])
    assert result.exit_code == 2 and "cannot run before step 1" in result.output
    result = runner.invoke(cli, ["corruption", "invoice-service", "--config", str(config_file), "--step", "freeze",
                                 "--skip", "writes go through a queue that is paused"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["corruption", "invoice-service", "--config", str(config_file), "--step", "assess"])
    assert result.exit_code == 0, result.output
    assert "done: missing = 1" in result.output
    result = runner.invoke(cli, ["corruption", "invoice-service", "--config", str(config_file)])
    assert "1. IMMEDIATELY stop writes: skipped (writes go through a queue that is paused)" in result.output
    assert "Next: 3. Restore from backup if needed" in result.output


def test_an_unset_dsn_variable_stops_every_command_and_never_reaches_another_database(
    postgres, database, tmp_path, monkeypatch
):
    """`dsn_env` names the database; with that variable unset, libpq would go to
    whatever PGHOST/PGDATABASE say (here a real, different database, which a
    restore would have wiped). Nothing runs, and the sentence names the variable."""
    other = postgres.create_database()
    _migrations_table(postgres, other, [("9999_dev_only", "2024-07-01T10:00:00Z")])
    monkeypatch.delenv(DSN_ENV, raising=False)
    for key, value in postgres.env(other).items():
        if key.startswith("PG"):
            monkeypatch.setenv(key, value)
    dump = postgres.dump(database, tmp_path / "before.dump")
    config = parse({"services": [{"name": "svc", "database": {
        "dsn_env": DSN_ENV, "migration_status": {"sql": STATUS_SQL}, "assess_sql": "SELECT 1"}}]})
    db = Database("svc", config.services[0].database)
    state = db.migration_state()
    assert state.migrations == () and f"The environment variable {DSN_ENV}" in (state.error or "")
    assert "never falls back to another database" in state.error
    assert db.name == f"(unknown: {DSN_ENV} is not set)"
    with pytest.raises(DatabaseError, match=f"The environment variable {DSN_ENV}"):
        db.run(db.restore_argv(str(dump)))
    with pytest.raises(DatabaseError, match=f"The environment variable {DSN_ENV}"):
        db.require_dsn("restore a backup")
    # The other database is as it was.
    assert "9999_dev_only" in postgres.psql(other, "SELECT version FROM schema_migrations")

    # No dsn_env at all: reading may use PG* (the operator's choice), restoring never does.
    bare = Database("svc", parse({"services": [{"name": "svc", "database": {
        "migration_status": {"sql": STATUS_SQL}}}]}).services[0].database)
    assert [m.name for m in bare.migration_state().migrations] == ["9999_dev_only"]
    with pytest.raises(DatabaseError, match="no database is named in the config"):
        bare.require_dsn("restore a backup")
