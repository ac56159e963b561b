"""The `rollback-console` command.

Exit codes: 0 success; 1 the operation failed or the service is unhealthy
after it; 2 usage or configuration error (a revision, service or previous
container that does not exist included); 3 the runbook says not to roll back
(`--force` overrides), or the migration state could not be read; 4 (`status`)
a signal the decision needs is missing or stale (SIGNALS UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from console import __version__, codecache
from console.config import Config, ConfigError, load
from console.exitcodes import EXIT_FAILED, EXIT_SIGNALS_UNAVAILABLE, EXIT_USAGE
from console.model import Action


class UsageError(click.ClickException):
    """A configuration or usage problem: message to stderr, exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:  # no "Error:" prefix noise: the message is a sentence
        click.echo(f"rollback-console: {self.message}", err=True)


def _finite(param: click.Parameter, value: float | None) -> float | None:
    """Infinity and NaN pass click's range checks (NaN compares false): refuse them."""
    import math

    if value is not None and not math.isfinite(value):
        raise UsageError(f"--{param.name}: {value} is not a finite number; give a finite number")
    return value


def _revision(value: str | None):
    """`--to-revision`: a number, or a blue-green colour (`blue`, `blue:3`); UsageError naming what is wrong."""
    from console.model import parse_revision

    if value is None:
        return None
    try:
        return parse_revision(value)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _load(path: str | Path) -> Config:
    from console.config import check_kubeconfigs

    try:
        config = load(path)
        check_kubeconfigs(config, str(path))
        return config
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


def _session(config: Config, clock=None, store_path: Path | None = None, operator: str | None = None,
             refresh_process=None):
    from console import heap
    from console.session import Session
    from console.store import Store

    heap.limit_arenas()  # before the session's threads and its refresh process
    store = Store(store_path or _store_of(config))
    return Session(config, store, clock=clock, operator=operator, refresh_process=refresh_process)


def _early_refresh_process(config: Config, clock):
    """The TUI's refresh process, started as soon as the config is read (None
    when the config runs the cycle in the console's process): its imports and
    first cycle overlap building the session as well as loading the UI
    (console.refresher). The session takes it over (`_session`)."""
    if not config.ui.refresh_process:
        return None
    from console import heap
    from console.refresher import PollerProcess

    heap.limit_arenas()  # before the child is forked: it inherits the setting
    return PollerProcess(config, clock, max_age=config.refresh_interval)


def _store_of(config: Config) -> Path:
    """The incident database `config` names (`incident.store`), else the XDG state dir's."""
    from console import locations

    return Path(config.incident.store) if config.incident.store else locations.default_store_path()


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rollback-console")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Rollback Console: the rollback runbook as a live, guided incident console.

    Without a command, opens the console on the config in the XDG config dir.
    """
    if ctx.invoked_subcommand not in (None, "watch"):
        gc.enable()  # start-up is over for every command but the TUI (see console/launch.py)
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
@click.option("--viewer", is_flag=True, help="Read-only: every action key disabled, a VIEWER mark (war-room screens).")
def watch(config_path: str | None, theme: str | None, viewer: bool) -> None:
    """The console against real systems."""
    from console.clock import SystemClock

    path = _config_path(config_path)
    config = _load(path)
    clock = SystemClock()
    session = _session(config, clock=clock, refresh_process=_early_refresh_process(config, clock))
    session.read_only = viewer
    _run_tui(session, theme or config.ui.theme, viewer=viewer)


def _run_tui(session, theme: str, viewer: bool = False) -> None:
    # The refresh process starts first: its imports and first cycle overlap the UI's.
    if session.config.ui.refresh_process:
        session.start_refresh_process()
        session.begin_first_refresh()
    from console.ui.app import build_app

    codecache.release()  # the classes the start-up needs are made
    # The app closes the session (its HTTP clients live on the app's loop) on exit.
    try:
        build_app(session, theme=theme, viewer=viewer).run()
    finally:
        gc.enable()  # if the app stopped before its first frame (it resumes the collector after it)


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (default: XDG config dir).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: web.port in the config, 8000).")
@click.option("--follow", is_flag=True, help="Read-only VIEWER consoles following the shared incident store.")
def web(config_path: str | None, port: int | None, follow: bool) -> None:
    """Serve the console to browsers (textual-serve): one console per browser tab."""
    import os

    path = _config_path(config_path)
    config = _load(path)
    settings = config.web
    token = None
    if not settings.is_loopback():
        token = os.environ.get(settings.token_env)
        if not token:
            raise UsageError(f"web.host {settings.host} is not loopback: export {settings.token_env} with a token "
                             "that browsers present as ?token=..., or serve on 127.0.0.1.")
    from console.ui.web import ConsoleWebServer, console_command

    title = "Rollback Console" + (" (viewer)" if follow else "")
    server = ConsoleWebServer(console_command(path, follow), host=settings.host, port=port or settings.port,
                              token=token, public_url=settings.public_url, title=title)
    server.serve()


@cli.command()
@click.argument("name", required=False)
@click.option("--scenario-file", type=click.Path(dir_okay=False, exists=False), help="A scenario YAML file instead of a shipped one.")
@click.option("--list", "list_only", is_flag=True, help="List the shipped scenarios: name, the runbook row it drills, its story in one line.")
@click.option("--check", "check_file", type=click.Path(dir_okay=False), help="Validate a scenario file and exit (0 valid, 2 with the reason), serving nothing.")
@click.option("--speed", type=click.FloatRange(min=0.01, max=1000), default=1.0, show_default=True, callback=lambda ctx, param, value: _finite(param, value), help="Simulated time runs this many times faster.")
@click.option("--serve-only", is_flag=True, help="Serve the drill world without the TUI (practise kubectl against it).")
@click.option("--write-config", "write_dir", type=click.Path(file_okay=False), help="With --serve-only: write DIR/kubeconfig and DIR/config.yaml.")
@click.option("--with-prometheus", is_flag=True, help="Also start a real Prometheus (the `prometheus` binary) scraping the drill, and read metrics from it (speed 1 only).")
@click.option("--with-alertmanager", is_flag=True, help="Also start a real Alertmanager with the runbook's AutoRollbackTrigger routed to the autopilot, and run the autopilot (implies --with-prometheus).")
@click.option("--theme", help="Theme name.")
def drill(name: str | None, scenario_file: str | None, list_only: bool, check_file: str | None, speed: float, serve_only: bool, write_dir: str | None, with_prometheus: bool, theme: str | None, with_alertmanager: bool = False) -> None:
    """A training drill against a simulated world (default scenario: bad-deploy)."""
    from console.drill import runner
    from console.drill.scenario import ScenarioError, list_scenarios, load_scenario, story_line

    if list_only:
        for scenario_name in list_scenarios():
            shipped = load_scenario(scenario_name)
            row = shipped.expect.row or shipped.expect.action.replace("_", " ")
            click.echo(f"{scenario_name:<24} {row:<32} {story_line(shipped)}")
        return
    if check_file:
        try:
            checked = load_scenario(Path(check_file))
        except ScenarioError as err:
            raise UsageError(str(err)) from None
        by = f" by {checked.expect.by:g} s" if checked.expect.by is not None else " at t=0"
        count = len(checked.services)
        click.echo(f"{check_file}: valid scenario {checked.name!r} ({count} service{'s' if count != 1 else ''}; "
                   f"expects {checked.expect.action}{by}" + (f"; drills {checked.expect.row!r}" if checked.expect.row else "") + ")")
        return
    if name and scenario_file:
        raise UsageError("give a scenario NAME or --scenario-file PATH, not both")
    if write_dir and not serve_only:
        raise UsageError("--write-config only goes with --serve-only")
    try:
        scenario = load_scenario(scenario_file or name or "bad-deploy")
    except ScenarioError as err:
        raise UsageError(str(err)) from None
    if (with_prometheus or with_alertmanager) and speed != 1.0:
        raise UsageError("--with-prometheus and --with-alertmanager run at --speed 1 only: "
                         "a real Prometheus scrapes on wall-clock time")
    try:
        if serve_only:
            directory = Path(write_dir) if write_dir else None
            runner.serve(scenario, speed=speed, directory=directory, out=click.echo, with_prometheus=with_prometheus,
                         with_alertmanager=with_alertmanager)
            return
        running = runner.start(scenario, speed=speed, with_prometheus=with_prometheus,
                               with_alertmanager=with_alertmanager)
    except (runner.PrometheusUnavailable, runner.AlertmanagerUnavailable) as err:
        raise UsageError(str(err)) from None
    from datetime import datetime, timezone

    from console.drill.record import DrillLink, create_record

    link = None
    try:
        config = _load(running.config_path)
        # The drill's incidents and record stay under the XDG state dir's drills/, after the world is gone.
        record = create_record(scenario, running.world.start, speed, datetime.now(timezone.utc))
        record.data["server_url"] = running.server.url  # `drill-ctl` finds the running drill here
        record.save()
        link = DrillLink(running.world, record, config.incident.post_rollback_checklist())
        session = _session(config, clock=running.world.clock, store_path=record.store_path,
                           operator=config.operator or runner.DRILL_OPERATOR)
        session.drill_link = link
        if with_alertmanager:
            try:
                # The TUI shows what the autopilot does: it writes the drill record's store.
                running.start_autopilot(store_path=record.store_path)
            except runner.AlertmanagerUnavailable as err:
                raise UsageError(str(err)) from None
        _run_tui(session, theme or config.ui.theme)
    finally:
        try:
            if link is not None:
                _final_debrief(link, running.world.clock.now())
        finally:
            running.stop()


def _final_debrief(link, now) -> None:
    """The drill has ended (the console quit): score it, keep it, show it."""
    from console.store import Store, StoreError

    link.record.data["server_url"] = None  # the drill is over: nothing to control
    try:
        with Store(link.record.store_path) as store:
            result = link.debrief_now(store, now)
    except (StoreError, OSError) as err:
        click.echo(f"rollback-console: the drill's debrief could not be made ({err}); "
                   f"its record is in {link.record.directory}", err=True)
        return
    click.echo(f"DRILL {link.scenario.name}: debrief")
    for line in result.lines():
        click.echo(line)
    click.echo(f"Record: {link.record.directory}  ·  rollback-console export --drill {link.record.id}")


@cli.group("drill-ctl")
@click.option("--url", help="The drill server's URL (default: the latest `rollback-console drill` still running; "
                            "`--serve-only` prints its URL).")
@click.pass_context
def drill_ctl(ctx: click.Context, url: str | None) -> None:
    """Trainer controls of a running drill: pause, resume, speed, note, fact, outage. Each is recorded."""
    ctx.obj = url


def _drill_url(url: str | None) -> str:
    if url:
        return url.rstrip("/")
    from console.drill.record import list_records

    running = [r for r in list_records() if r.data.get("server_url")]
    if not running:
        raise UsageError("no running drill found: start one with `rollback-console drill`, "
                         "or pass --url (the URL `drill --serve-only` prints)")
    return str(running[-1].data["server_url"]).rstrip("/")


def _control(ctx: click.Context, request: dict) -> None:
    import httpx

    url = _drill_url(ctx.obj)
    try:
        response = httpx.post(f"{url}/drill/control", json=request, timeout=5.0)
    except httpx.HTTPError as err:
        raise click.ClickException(f"the drill at {url} did not answer ({err.__class__.__name__}); "
                                   "is it still running?") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code == 400:
        raise UsageError(f"the drill refused it: {answer.get('error', response.text)}")
    if response.status_code != 200:
        raise click.ClickException(f"the drill at {url} answered HTTP {response.status_code}; is it a drill server?")
    click.echo(f"{answer.get('done', 'done')} (drill time {answer.get('at', '?')})")


@drill_ctl.command("pause")
@click.pass_context
def drill_ctl_pause(ctx: click.Context) -> None:
    """Stop simulated time (the console's timers stop with it)."""
    _control(ctx, {"action": "pause"})


@drill_ctl.command("resume")
@click.pass_context
def drill_ctl_resume(ctx: click.Context) -> None:
    """Let simulated time run again at its speed."""
    _control(ctx, {"action": "resume"})


@drill_ctl.command("speed")
@click.argument("speed", type=click.FloatRange(min=0.01, max=1000), callback=lambda ctx, param, value: _finite(param, value))
@click.pass_context
def drill_ctl_speed(ctx: click.Context, speed: float) -> None:
    """Run simulated time SPEED times faster than the wall clock."""
    _control(ctx, {"action": "speed", "speed": speed})


@drill_ctl.command("note")
@click.argument("text", nargs=-1, required=True)
@click.pass_context
def drill_ctl_note(ctx: click.Context, text: tuple[str, ...]) -> None:
    """Tell the trainee something (shown on screen and in the timeline)."""
    _control(ctx, {"action": "note", "text": " ".join(text)})


@drill_ctl.command("fact")
@click.argument("assignments", nargs=-1, required=True)
@click.pass_context
def drill_ctl_fact(ctx: click.Context, assignments: tuple[str, ...]) -> None:
    """Reveal facts: NAME=VALUE ... (data_corruption=true, migration_name=0042_x)."""
    import yaml

    facts = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"{item!r} is not NAME=VALUE (for example data_corruption=true)")
        facts[name.strip()] = yaml.safe_load(value) if value.strip() else None
    _control(ctx, {"action": "facts", "facts": facts})


@drill_ctl.command("outage")
@click.argument("service")
@click.option("--recovered", is_flag=True, help="The dependency recovers (default: it starts failing).")
@click.option("--dependency", default=None, help="What fails (it appears in the logs).")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=None, callback=lambda ctx, param, value: _finite(param, value), help="Fraction of requests failing (default 0.12).")
@click.pass_context
def drill_ctl_outage(ctx: click.Context, service: str, recovered: bool, dependency: str | None, error_rate: float | None) -> None:
    """An external dependency of SERVICE fails (or recovers with --recovered)."""
    request: dict = {"action": "outage", "service": service, "active": not recovered}
    if dependency:
        request["dependency"] = dependency
    if error_rate is not None:
        request["error_rate"] = error_rate
    _control(ctx, request)


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
    phases = {v.snapshot.service: _phase(session, v) for v in views}
    if as_json:
        click.echo(json.dumps([{**_status_json(v), "phase": phases[v.snapshot.service]} for v in views], indent=2))
    else:
        for view in views:
            click.echo(_status_line(view))
            phase = phases[view.snapshot.service]
            if phase is not None:  # the signals may still show the version rolled back from
                click.echo(f"    {phase['name']}: {phase['detail']}")
            for error in view.snapshot.errors:  # why a signal is missing, and what to do
                click.echo(f"    {error}")
            health = view.snapshot.health
            if health.deployment_failing:
                click.echo(f"    {health.deployment_failing}")
            if health.endpoint_ok is False and not health.completely_down:
                # One failed check while pods are ready is not yet "down" (`health.failures_before_down`).
                click.echo(f"    health endpoint: {health.endpoint_status or 'failing'} ({health.endpoint_failures} "
                           f"failed check in a row; down after {health.endpoint_failures_down})")
    # Unknown is not healthy: a script checking `status` must not read it as fine.
    if any(v.decision.action is Action.SIGNALS_UNAVAILABLE for v in views):
        sys.exit(EXIT_SIGNALS_UNAVAILABLE)


def _phase(session, view) -> dict | None:
    """Where a rollback of the service stands (ROLLING BACK, VERIFYING, ROLLED
    BACK (watching)), from the incident and the cluster's records: the signals'
    decision alone reads windows that still hold the version rolled back from."""
    from console import incident as incidents

    service, health = view.snapshot.service, view.snapshot.health
    now = session.clock.now()
    phase = incidents.rollback_phase(session.incident_state(service), now, health.ready, health.desired,
                                     session.thresholds.rollback_settle)
    if phase is None and (record := session.cluster_rollback(service)) is not None and record.at is not None:
        settled = record.at + session.thresholds.rollback_settle
        if now < settled:
            phase = incidents.Phase("ROLLED BACK (watching)", f"{record.sentence(service)}; the signals settle on "
                                    f"windows after it from {settled:%H:%M:%S} UTC", until=settled)
    if phase is None:
        return None
    return {"name": phase.headline, "detail": phase.detail, "until": phase.until.isoformat() if phase.until else None}


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
        "deployment_failing": health.deployment_failing,
        "revision": current.number if current else None,
        # Blue-green: the live colour, whose Deployment's own number `revision` is (null elsewhere).
        "colour": current.colour if current else None,
        "revision_label": current.label if current else None,
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
            "unavailable": [
                {"signal": m.signal, "why": m.why, "since": m.since.isoformat() if m.since else None}
                for m in decision.unavailable
            ],
        },
    }


def _status_line(view) -> str:
    snap, decision = view.snapshot, view.decision
    rate = f"{snap.metrics.error_rate * 100:.1f} %" if snap.metrics.error_rate is not None else "n/a"
    p95 = f"{snap.metrics.latency_p95_ms:.0f} ms" if snap.metrics.latency_p95_ms is not None else "n/a"
    reasons = "; ".join(str(r) for r in decision.reasons)
    current = snap.current_revision
    revision = f"  {current.label}" if current is not None else ""  # "blue · revision 3" for blue-green
    return f"{snap.service}: {decision.headline}  errors {rate}  p95 {p95}{revision}" + (f"  ({reasons})" if reasons else "")


@cli.command()
@click.argument("service")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--reason", required=True, help="Why (goes in the timeline and the messages).")
@click.option("--to-revision", metavar="N|COLOUR[:N]", callback=lambda ctx, param, value: _revision(value),
              help="Roll back to this revision (default: the previous one); for a blue-green service, a colour "
                   "(blue, to switch back to it) or a colour and its Deployment's revision (blue:3).")
@click.option("--dry-run", is_flag=True, help="Print the plan (the exact requests) and change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Override the gate (the runbook says not to, or the target was rolled back from); --reason is recorded as the override's reason.")
@click.option("--approved-by", help="The Level 2 approver of a --force override, where the config names approvers (gate.approvers).")
@click.option("--timeout", type=click.FloatRange(min=1), default=None, callback=lambda ctx, param, value: _finite(param, value),
              help="Seconds to wait for the rollout (default: the config's rollout_timeout).")
@click.option("--quick", is_flag=True, help="Docker Compose: the quick rollback (scale to 0, start the previous container).")
@click.option("--to-tag", help="Docker Compose: roll back to this image tag (default: the previous version).")
def rollback(service: str, config_path: str | None, reason: str, to_revision, dry_run: bool, yes: bool, force: bool, approved_by: str | None, timeout: float | None, quick: bool, to_tag: str | None) -> None:
    """The runbook's automated rollback: record, roll back, wait, verify."""
    from console.rollback import run_headless_rollback
    from console.session import colour_refusal

    config = _load(_config_path(config_path))
    try:
        platform = config.service(service).platform
    except ConfigError as err:
        raise UsageError(str(err)) from None
    refusal = colour_refusal(service, platform, to_revision)
    if refusal:
        raise UsageError(refusal)
    if quick and platform != "compose":
        raise UsageError(f"--quick is the Docker Compose quick rollback; {service} runs on {platform}: "
                         "roll it back without --quick")
    if approved_by is not None and not force:
        raise UsageError("--approved-by goes with --force: it names who approved the override")
    if not reason.strip():
        raise UsageError("--reason is empty: say why (it goes in the timeline, the messages and the override record)")
    if not (yes or dry_run) and not sys.stdin.isatty():
        raise UsageError("no terminal to confirm on: pass --yes to roll back without a prompt, or --dry-run to see the plan")
    session = _session(config)
    if to_tag is not None:
        to_revision = _revision_for_tag(session, service, platform, to_tag, to_revision, quick)
    code = run_headless_rollback(
        session, service, reason=reason, to_revision=to_revision, dry_run=dry_run,
        confirm=None if yes else (lambda text: click.confirm(text, default=False)),
        force=force, timeout=timeout, out=click.echo, quick=quick, approved_by=approved_by,
    )
    sys.exit(code)


def _revision_for_tag(session, service: str, platform: str, tag: str, to_revision: int | None, quick: bool) -> int:
    """`--to-tag`: the Compose history's revision number of the tag."""
    from console.platforms.base import NotFound, PlatformError

    if platform != "compose":
        raise UsageError(f"--to-tag names a Docker Compose image tag; {service} runs on {platform}: use --to-revision N")
    if to_revision is not None or quick:
        raise UsageError("--to-tag cannot be combined with --to-revision or --quick: choose one target")
    try:
        return session.platform(service).revision_for_tag(tag)
    except NotFound as err:
        raise UsageError(str(err)) from None
    except PlatformError as err:
        click.echo(f"Cannot look up {tag}: {err}")
        sys.exit(EXIT_FAILED)
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
        click.echo(f"{name}: {_as_written(value)}")


def _as_written(value) -> str:
    """A fact's value as `--set` takes it (true, false, null, a time), not Python's True/None."""
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (with an autopilot: section).")
@click.option("--shadow", is_flag=True, help="Record and post what it would do, and change nothing.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False), help="Incident database (default: the config's incident.store, else the XDG state dir's; a served drill's config names DIR/drill-incidents.db).")
def autopilot(config_path: str | None, shadow: bool, store_path: str | None) -> None:
    """Receive Alertmanager's webhooks and roll back through the gate (README "Autopilot")."""
    from console.autopilot.service import AutopilotError, serve

    config = _load(_config_path(config_path))
    try:
        serve(config, Path(store_path) if store_path else _store_of(config), shadow=shadow,
              out=lambda line: click.echo(line))
    except AutopilotError as err:
        raise UsageError(str(err)) from None


@cli.command()
@click.argument("incident_id", required=False)
@click.option("--latest", is_flag=True, help="Export the most recently opened incident (with --drill: the latest drill).")
@click.option("--drill", "drill", is_flag=True, help="Export a drill's record instead (INCIDENT_ID is then the drill's ID): DRILL, the debrief and score, the story, its incidents.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True, help="Markdown for the ticket, JSON for tools.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write to FILE instead of standard output.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (its checklist and thresholds; default: the XDG config if present).")
@click.option("--store", "store_path", type=click.Path(dir_okay=False), help="Incident database (default: the config's incident.store, else the XDG state dir's; a served drill's config names DIR/drill-incidents.db).")
def export(incident_id: str | None, latest: bool, drill: bool, fmt: str, output: str | None, config_path: str | None, store_path: str | None) -> None:
    """Write an incident for the RCA and the ticket: timeline, metrics before
    and after, messages, checklist, decisions with reasons."""
    from datetime import datetime, timezone

    from console import locations
    from console.checklist import DEFAULT_CHECKLIST
    from console.export import ExportError, export_incident, record_export, resolve_incident
    from console.store import Store, StoreError

    checklist, thresholds, named, drill_name = DEFAULT_CHECKLIST, None, None, None
    path = Path(config_path) if config_path else locations.default_config_path()
    if config_path or path.exists():
        config = _load(path)
        checklist, thresholds = config.incident.post_rollback_checklist(), config.decision_thresholds
        named, drill_name = _store_of(config), config.drill
    if drill:
        if store_path:
            raise UsageError("--store names an incident database; a drill's record is found by its ID (or --latest)")
        _export_drill(incident_id, latest, fmt, output, checklist, thresholds)
        return
    database = Path(store_path) if store_path else named or locations.default_store_path()
    if not database.exists():
        raise UsageError(f"no incident database at {database}; pass --store PATH (a drill keeps DIR/drill-incidents.db)")
    try:
        with Store(database) as store:
            chosen = resolve_incident(store, incident_id, latest)
            now = datetime.now(timezone.utc)
            text = export_incident(store, chosen, fmt, now, checklist=checklist, thresholds=thresholds,
                                   drill=_drill_of_store(database) or (drill_name if not store_path else None))
            if output:
                try:
                    Path(output).write_text(text, encoding="utf-8")
                except OSError as err:
                    raise click.ClickException(f"cannot write {output}: {err.strerror}; choose another --output") from None
                record_export(store, chosen, str(Path(output).resolve()), now)
                click.echo(f"{chosen} exported to {output}", err=True)
            else:
                click.echo(text, nl=False)
                # Printed, not kept: it does not tick "Logs preserved for investigation" (an --output file does).
    except ExportError as err:
        raise UsageError(str(err)) from None
    except StoreError as err:
        raise click.ClickException(str(err)) from None


def _drill_of_store(database: Path) -> str | None:
    """The scenario's name when `database` is a drill record's store (its drill.json beside it)."""
    from console.drill.record import RECORD_FILE

    try:
        return json.loads((database.parent / RECORD_FILE).read_text(encoding="utf-8")).get("scenario") or None
    except (OSError, ValueError, AttributeError):
        return None


def _export_drill(drill_id: str | None, latest: bool, fmt: str, output: str | None, checklist, thresholds) -> None:
    from datetime import datetime, timezone

    from console.drill.record import DrillRecordError, export_drill, load_record
    from console.export import ExportError

    try:
        record = load_record(drill_id, latest)
        text = export_drill(record, fmt, datetime.now(timezone.utc), checklist=checklist, thresholds=thresholds)
    except (DrillRecordError, ExportError) as err:
        raise UsageError(str(err)) from None
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as err:
            raise click.ClickException(f"cannot write {output}: {err.strerror}; choose another --output") from None
        click.echo(f"drill {record.id} exported to {output}", err=True)
    else:
        click.echo(text, nl=False)


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
