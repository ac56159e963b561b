"""The `rollback-console` command.

Exit codes: 0 success; 1 the operation failed or the service is unhealthy
after it; 2 usage or configuration error (a revision, service or previous
container that does not exist included); 3 the runbook says not to roll back
(`--force` overrides), or the migration state could not be read.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from console import __version__
from console.config import Config, ConfigError, load
from console.exitcodes import EXIT_FAILED, EXIT_USAGE


class UsageError(click.ClickException):
    """A configuration or usage problem: message to stderr, exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:  # no "Error:" prefix noise: the message is a sentence
        click.echo(f"rollback-console: {self.message}", err=True)


def _load(path: str | Path) -> Config:
    try:
        return load(path)
    except ConfigError as err:
        raise UsageError(str(err)) from None


def _config_path(path: str | None) -> Path:
    from console import locations

    if path:
        return Path(path)
    found = locations.default_config_path()
    if not found.exists():
        raise UsageError(
            f"no config at {found}; pass --config PATH, set ROLLBACK_CONSOLE_CONFIG, "
            "or try a drill first: rollback-console drill bad-deploy"
        )
    return found


def _session(config: Config, clock=None, store_path: Path | None = None):
    from console import locations
    from console.session import Session
    from console.store import Store

    store = Store(store_path or locations.default_store_path())
    return Session(config, store, clock=clock)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rollback-console")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Rollback Console: the rollback runbook as a live, guided incident console.

    Without a command, opens the console on the config in the XDG config dir.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(watch, config_path=None, theme=None)


@cli.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False))
def check_config(path: str) -> None:
    """Validate a config file: exit 0 when valid, 2 with the reason when not."""
    config = _load(path)
    click.echo(f"{path}: valid ({len(config.services)} service{'s' if len(config.services) != 1 else ''}: "
               f"{', '.join(s.name for s in config.services)})")


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (default: XDG config dir).")
@click.option("--theme", help="Theme name (default, high-contrast, light, or a user theme).")
def watch(config_path: str | None, theme: str | None) -> None:
    """The console against real systems."""
    path = _config_path(config_path)
    config = _load(path)
    _run_tui(_session(config), theme or config.ui.theme)


def _run_tui(session, theme: str) -> None:
    from console.ui.app import build_app

    # The app closes the session (its HTTP clients live on the app's loop) on exit.
    build_app(session, theme=theme).run()


@cli.command()
@click.argument("name", required=False)
@click.option("--scenario-file", type=click.Path(dir_okay=False, exists=False), help="A scenario YAML file instead of a shipped one.")
@click.option("--list", "list_only", is_flag=True, help="List the shipped scenarios, one per line.")
@click.option("--speed", type=click.FloatRange(min=0.01, max=1000), default=1.0, show_default=True, help="Simulated time runs this many times faster.")
@click.option("--serve-only", is_flag=True, help="Serve the drill world without the TUI (practise kubectl against it).")
@click.option("--write-config", "write_dir", type=click.Path(file_okay=False), help="With --serve-only: write DIR/kubeconfig and DIR/config.yaml.")
@click.option("--with-prometheus", is_flag=True, help="Also start a real Prometheus (the `prometheus` binary) scraping the drill, and read metrics from it (speed 1 only).")
@click.option("--theme", help="Theme name.")
def drill(name: str | None, scenario_file: str | None, list_only: bool, speed: float, serve_only: bool, write_dir: str | None, with_prometheus: bool, theme: str | None) -> None:
    """A training drill against a simulated world (default scenario: bad-deploy)."""
    from console.drill import runner
    from console.drill.scenario import ScenarioError, list_scenarios, load_scenario

    if list_only:
        for scenario_name in list_scenarios():
            click.echo(scenario_name)
        return
    if name and scenario_file:
        raise UsageError("give a scenario NAME or --scenario-file PATH, not both")
    if write_dir and not serve_only:
        raise UsageError("--write-config only goes with --serve-only")
    try:
        scenario = load_scenario(scenario_file or name or "bad-deploy")
    except ScenarioError as err:
        raise UsageError(str(err)) from None
    if with_prometheus and speed != 1.0:
        raise UsageError("--with-prometheus runs at --speed 1 only: a real Prometheus scrapes on wall-clock time")
    try:
        if serve_only:
            directory = Path(write_dir) if write_dir else None
            runner.serve(scenario, speed=speed, directory=directory, out=click.echo, with_prometheus=with_prometheus)
            return
        running = runner.start(scenario, speed=speed, with_prometheus=with_prometheus)
    except runner.PrometheusUnavailable as err:
        raise UsageError(str(err)) from None
    try:
        config = _load(running.config_path)
        session = _session(config, clock=running.world.clock, store_path=running.store_path)
        _run_tui(session, theme or config.ui.theme)
    finally:
        running.stop()


@cli.command()
@click.argument("service", required=False)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list, one object per service).")
def status(service: str | None, config_path: str | None, as_json: bool) -> None:
    """One refresh: signals, health and the runbook's decision per service."""
    config = _load(_config_path(config_path))
    if service:
        try:
            config.service(service)
        except ConfigError as err:
            raise UsageError(str(err)) from None
    session = _session(config)
    views = asyncio.run(_refresh_once(session, service))
    if as_json:
        click.echo(json.dumps([_status_json(v) for v in views], indent=2))
        return
    for view in views:
        click.echo(_status_line(view))


async def _refresh_once(session, only: str | None = None):
    try:
        return await session.refresh(only)
    finally:
        await session.aclose()


def _status_json(view) -> dict:
    snap, decision = view.snapshot, view.decision
    metrics, health = snap.metrics, snap.health

    def age(at) -> float | None:
        return round((snap.taken_at - at).total_seconds(), 3) if at else None

    current = snap.current_revision
    return {
        "service": snap.service,
        "error_rate": metrics.error_rate,
        "latency_p95_ms": metrics.latency_p95_ms,
        "latency_p95_before_ms": metrics.latency_p95_before_ms,
        "request_rate": metrics.request_rate,
        "route_error_rates": dict(metrics.route_error_rates),
        "healthy": not health.completely_down and health.endpoint_ok is not False,
        "ready": health.ready,
        "desired": health.desired,
        "endpoint": health.endpoint_status or None,
        "revision": current.number if current else None,
        "images": list(current.images) if current else [],
        "stale": snap.stale,
        # Per signal: seconds since Prometheus sampled the value ("metrics": the oldest).
        "age_seconds": {
            "metrics": age(metrics.sampled_at),
            **{name: age(at) for name, at in metrics.sampled},
            "health": age(health.checked_at),
        },
        "sampled_at": {name: at.isoformat() for name, at in metrics.sampled},
        "signals": {
            "latency_spike": snap.signals.latency_spike,
            "latency_factor": snap.signals.latency_factor,
            "single_endpoint": snap.signals.single_endpoint,
            "intermittent": snap.signals.intermittent,
            "crossings": snap.signals.crossings,
        },
        "errors": list(snap.errors),
        "decision": {
            "action": decision.action.value,
            "headline": decision.headline,
            "reasons": [str(r) for r in decision.reasons],
            "alternatives": list(decision.alternatives),
            "deadline": decision.deadline.isoformat() if decision.deadline else None,
            "freeze_writes": decision.freeze_writes,
        },
    }


def _status_line(view) -> str:
    snap, decision = view.snapshot, view.decision
    rate = f"{snap.metrics.error_rate * 100:.1f} %" if snap.metrics.error_rate is not None else "n/a"
    p95 = f"{snap.metrics.latency_p95_ms:.0f} ms" if snap.metrics.latency_p95_ms is not None else "n/a"
    reasons = "; ".join(str(r) for r in decision.reasons)
    return f"{snap.service}: {decision.headline}  errors {rate}  p95 {p95}" + (f"  ({reasons})" if reasons else "")


@cli.command()
@click.argument("service")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--reason", required=True, help="Why (goes in the timeline and the messages).")
@click.option("--to-revision", type=click.IntRange(min=1), help="Roll back to this revision (default: the previous one).")
@click.option("--dry-run", is_flag=True, help="Print the plan (the exact requests) and change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Override the gate (the runbook says not to, or the target was rolled back from); --reason is recorded as the override's reason.")
@click.option("--approved-by", help="The Level 2 approver of a --force override, where the config names approvers (gate.approvers).")
@click.option("--timeout", type=click.FloatRange(min=1), default=None,
              help="Seconds to wait for the rollout (default: the config's rollout_timeout).")
@click.option("--quick", is_flag=True, help="Docker Compose: the quick rollback (scale to 0, start the previous container).")
def rollback(service: str, config_path: str | None, reason: str, to_revision: int | None, dry_run: bool, yes: bool, force: bool, approved_by: str | None, timeout: float | None, quick: bool) -> None:
    """The runbook's automated rollback: record, roll back, wait, verify."""
    from console.rollback import run_headless_rollback

    config = _load(_config_path(config_path))
    try:
        platform = config.service(service).platform
    except ConfigError as err:
        raise UsageError(str(err)) from None
    if quick and platform != "compose":
        raise UsageError(f"--quick is the Docker Compose quick rollback; {service} runs on {platform}: "
                         "roll it back without --quick")
    if approved_by is not None and not force:
        raise UsageError("--approved-by goes with --force: it names who approved the override")
    if not reason.strip():
        raise UsageError("--reason is empty: say why (it goes in the timeline, the messages and the override record)")
    if not (yes or dry_run) and not sys.stdin.isatty():
        raise UsageError("no terminal to confirm on: pass --yes to roll back without a prompt, or --dry-run to see the plan")
    code = run_headless_rollback(
        _session(config), service, reason=reason, to_revision=to_revision, dry_run=dry_run,
        confirm=None if yes else (lambda text: click.confirm(text, default=False)),
        force=force, timeout=timeout, out=click.echo, quick=quick, approved_by=approved_by,
    )
    sys.exit(code)


_FACT_VALUES = {"true": True, "yes": True, "false": False, "no": False, "unknown": None, "none": None, "": None}


def _fact_value(name: str, text: str):
    """A `--set` value as the Facts field `name` takes it; UsageError naming what is wrong."""
    from dataclasses import fields

    from console.model import Facts

    kinds = {f.name: str(f.type) for f in fields(Facts)}
    if name not in kinds:
        raise UsageError(f"--set {name}=...: {name} is not a fact; the facts are {', '.join(kinds)}")
    kind = kinds[name]
    if "datetime" in kind:
        if text.strip().lower() in ("", "none", "unknown"):
            return None
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--set {name}={text}: not a time; give one like 2026-12-04T14:21:00Z") from None
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if "bool" in kind:
        key = text.strip().lower()
        if key not in _FACT_VALUES or (_FACT_VALUES[key] is None and "None" not in kind):
            allowed = "true or false" + (" or unknown" if "None" in kind else "")
            raise UsageError(f"--set {name}={text}: {name} is {allowed}")
        return _FACT_VALUES[key]
    return text.strip() or None


@cli.command()
@click.argument("service")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Declare a fact (repeatable): migration_applied=true, migration_reversible=false, "
                   "external_service_issue=true ...; recorded in the incident with your name.")
def facts(service: str, config_path: str | None, assignments: tuple[str, ...]) -> None:
    """Show (and with --set, declare) what the operator knows about SERVICE."""
    from dataclasses import asdict

    config = _load(_config_path(config_path))
    try:
        config.service(service)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    changes = []
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep:
            raise UsageError(f"--set {assignment}: write KEY=VALUE, e.g. migration_applied=true")
        changes.append((name.strip(), _fact_value(name.strip(), text)))
    session = _session(config)
    for name, value in changes:  # all parsed first: nothing half-done
        session.declare(service, name, value)
    for name, value in asdict(session.facts(service)).items():
        click.echo(f"{name}: {value.isoformat() if isinstance(value, datetime) else value}")


@cli.command()
@click.argument("incident_id", required=False)
@click.option("--latest", is_flag=True, help="Export the most recently opened incident.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True, help="Markdown for the ticket, JSON for tools.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write to FILE instead of standard output.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (its checklist and thresholds; default: the XDG config if present).")
@click.option("--store", "store_path", type=click.Path(dir_okay=False), help="Incident database (default: the XDG state dir's; a drill's is DIR/drill-incidents.db).")
def export(incident_id: str | None, latest: bool, fmt: str, output: str | None, config_path: str | None, store_path: str | None) -> None:
    """Write an incident for the RCA and the ticket: timeline, metrics before
    and after, messages, checklist, decisions with reasons."""
    from datetime import datetime, timezone

    from console import locations
    from console.checklist import DEFAULT_CHECKLIST
    from console.export import ExportError, export_incident, record_export, resolve_incident
    from console.store import Store, StoreError

    checklist, thresholds = DEFAULT_CHECKLIST, None
    path = Path(config_path) if config_path else locations.default_config_path()
    if config_path or path.exists():
        config = _load(path)
        checklist, thresholds = config.incident.post_rollback_checklist(), config.decision_thresholds
    database = Path(store_path) if store_path else locations.default_store_path()
    if not database.exists():
        raise UsageError(f"no incident database at {database}; pass --store PATH (a drill keeps DIR/drill-incidents.db)")
    try:
        with Store(database) as store:
            chosen = resolve_incident(store, incident_id, latest)
            now = datetime.now(timezone.utc)
            text = export_incident(store, chosen, fmt, now, checklist=checklist, thresholds=thresholds)
            if output:
                try:
                    Path(output).write_text(text, encoding="utf-8")
                except OSError as err:
                    raise click.ClickException(f"cannot write {output}: {err.strerror}; choose another --output") from None
                record_export(store, chosen, str(Path(output).resolve()), now)
                click.echo(f"{chosen} exported to {output}", err=True)
            else:
                click.echo(text, nl=False)
                record_export(store, chosen, "standard output", now)
    except ExportError as err:
        raise UsageError(str(err)) from None
    except StoreError as err:
        raise click.ClickException(str(err)) from None


@cli.group()
def db() -> None:
    """The service's database: migration state and what it means for a rollback."""


@db.command("status")
@click.argument("service")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
def db_status(service: str, config_path: str | None) -> None:
    """Applied migrations, those since the deploy, and whether a rollback would cross one that cannot be undone."""
    config = _load(_config_path(config_path))
    try:
        config.service(service)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    session = _session(config)
    asyncio.run(_refresh_once(session, service))
    state = session.migrations(service)
    if state is None:
        raise UsageError(f"no migration status is configured for {service}: set database.migration_status in the config")
    if state.error:
        click.echo(state.error)
        sys.exit(EXIT_FAILED)
    facts = session.migration_facts(service)
    click.echo(f"{service}: {len(state.migrations)} migrations (newest first), from {state.source}")
    for migration in state.migrations:
        reversible = {True: "reversible", False: "NOT reversible", None: "reversibility unknown"}[migration.reversible]
        click.echo(f"  {migration.describe()}  {reversible}")
    if not facts.migration_applied:
        click.echo("No migration was applied since the previous deploy: a rollback crosses none.")
        return
    click.echo(f"Applied since the previous deploy: {facts.migration_name}")
    check = session.rollback_check(service)
    if not check.blocked:
        click.echo("Reversible: roll back the application first, then the migration, then verify data integrity.")
        return
    click.echo(check.explanation)
    for option in check.options:
        click.echo(f"  - {option.title}: {option.detail}")


_STEPS = ("freeze", "assess", "restore", "fix", "verify", "resume")


@cli.command()
@click.argument("service")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--step", type=click.Choice(_STEPS), help="Run this step (default: show where the response is).")
@click.option("--backup", type=click.Path(dir_okay=False), help="The dump to restore (step restore).")
@click.option("--skip", "skip_reason", help="Skip the step instead, for this reason (recorded).")
@click.option("--list-backups", is_flag=True, help="List the configured backups, newest first.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def corruption(service: str, config_path: str | None, step: str | None, backup: str | None, skip_reason: str | None,
               list_backups: bool, yes: bool) -> None:
    """The runbook's Data Corruption Response, one step at a time (escalates to level 2)."""
    from console.database import DatabaseError
    from console.platforms.base import PlatformError
    from console.procedures import ProcedureError

    config = _load(_config_path(config_path))
    try:
        config.service(service)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    session = _session(config)
    try:
        response = session.corruption_response(service)
        if list_backups:
            for found in response.backups():
                click.echo(f"{found.path}  {found.modified:%Y-%m-%d %H:%M} UTC  {found.size} bytes")
            return
        if step is None:
            state = response.state()
            click.echo(f"{state.title} for {service}")
            for item in state.steps:
                detail = item.reason or item.error or item.result
                click.echo(f"  {item.label}: {item.status.value}" + (f" ({detail})" if detail else ""))
            click.echo(f"Next: {state.current.label}" if state.current else "All steps done.")
            return
        if skip_reason is not None:
            outcome = response.skip(step, skip_reason)
            click.echo(f"{outcome.state.step(step).label}: {outcome.summary}")
            return
        preview = response.preview(step, backup)
        click.echo(f"Step {preview.step.label}")
        for call in preview.calls:
            click.echo(f"  {call}")
        if preview.blocked:
            raise UsageError(preview.blocked)
        if preview.confirmation and not yes:
            if not sys.stdin.isatty():
                raise UsageError("no terminal to confirm on: pass --yes to run the step without a prompt")
            if not click.confirm(preview.confirmation, default=False):
                click.echo("Aborted: nothing was changed.")
                sys.exit(EXIT_FAILED)
        outcome = response.run(step, backup, on_progress=lambda line: click.echo(f"  {line}"))
    except ProcedureError as err:
        raise UsageError(str(err)) from None
    except (DatabaseError, PlatformError) as err:
        click.echo(str(err), err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"  {'done' if outcome.ok else 'FAILED'}: {outcome.summary}")
    for line in outcome.output.splitlines()[-40:]:
        click.echo(f"    {line}")
    if not outcome.ok:
        click.echo("The response stays at this step: fix the cause and run it again, or skip it with --skip REASON.")
        sys.exit(EXIT_FAILED)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="rollback-console")


if __name__ == "__main__":
    main()
