"""Starting a drill: the world, its server on 127.0.0.1, and the files that
point a console (and kubectl) at it."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from console.drill import migrations_api, prometheus_runner
from console.drill.ecs import DRILL_CREDENTIAL_ENV
from console.drill.alertmanager_runner import AlertmanagerUnavailable, RunningAlertmanager
from console.drill.prometheus_runner import PrometheusUnavailable, RunningPrometheus
from console.drill.scenario import Scenario
from console.drill.server import DrillServer, write_kubeconfig
from console.drill.world import SAMPLE_INTERVAL, World

DRILL_REFRESH_INTERVAL = 2.0
"""Drills refresh faster than the production default: trainees watch them closely."""
DRILL_SLACK_ENV = "ROLLBACK_CONSOLE_DRILL_SLACK_WEBHOOK"
"""The environment variable a drill console reads its Slack webhook URL from: the
drill's own sink (`/slack/webhook/drill`), which records what would have been posted."""
DRILL_OPERATOR = "trainee"
"""Who sits at the console of `rollback-console drill` (the escalation strip's level-1 contact),
so its messages are signed like the header. A `--serve-only` config names nobody: each
console and kubectl user there is who $USER says."""

DRILL_CONTACTS = {
    1: ["@trainee (on-call)"],
    2: ["@drill-team-lead"],
    3: ["@drill-sre", "pager: drill-platform"],
    4: ["@drill-incident-manager"],
}
"""Pretend contacts per escalation level, so the escalation strip shows who to call."""
DRILL_AUTOPILOT_TOKEN_ENV = "ROLLBACK_CONSOLE_DRILL_AUTOPILOT_TOKEN"
"""The environment variable the drill's autopilot reads Alertmanager's bearer token from (also in DIR/env)."""
DRILL_ECS_POLL_INTERVAL = 1.0
"""Seconds between ECS stability checks in a drill (deployments take simulated seconds, not minutes)."""


def console_config(scenario: Scenario, server_url: str, kubeconfig: Path, prometheus_url: str | None = None,
                   autopilot: dict | None = None) -> dict:
    """A console config (as data) for the drill world served at `server_url`;
    metrics from a real Prometheus at `prometheus_url` when given, else from
    the drill's own query API."""
    services = []
    for service in scenario.services:
        common = {
            "name": service.name,
            "cluster": "drill",
            "namespace": service.namespace,
            "health_url": f"{server_url}/health/{service.name}",
        }
        if service.kind == "deployment":
            entry = {**common, "platform": "kubernetes", "deployment": service.name}
            if migrations_api.mentions_migrations(scenario):
                # The service's migration ledger through the ordinary HTTP source (Actuator's flyway shape).
                entry["database"] = {"migration_status": {"url": f"{server_url}{migrations_api.PREFIX}{service.name}"}}
            services.append(entry)
        elif service.kind == "blue-green":
            # The world's shape: NAME-blue and NAME-green behind Service NAME selecting `version`.
            services.append(
                {
                    **common,
                    "platform": "blue-green",
                    "service": service.name,
                    "selector_key": "version",
                    "colours": {"blue": f"{service.name}-blue", "green": f"{service.name}-green"},
                }
            )
        elif service.kind == "canary":
            # The world's shape: NAME (track stable) and NAME-canary behind VirtualService NAME.
            services.append(
                {
                    **common,
                    "platform": "canary",
                    "virtualservice": service.name,
                    "deployment": service.name,
                    "canary_deployment": f"{service.name}-canary",
                }
            )
        elif service.kind == "ecs":
            # The drill's ECS API, signed with dummy keys from the variables named here.
            names = list(DRILL_CREDENTIAL_ENV)
            services.append(
                {
                    "name": service.name,
                    "platform": "ecs",
                    "cluster": service.ecs.cluster,
                    "service": service.name,
                    "region": service.ecs.region,
                    "endpoint_url": f"{server_url}/ecs",
                    "access_key_id_env": names[0],
                    "secret_access_key_env": names[1],
                    "poll_interval": DRILL_ECS_POLL_INTERVAL,
                    "health_url": f"{server_url}/health/{service.name}",
                }
            )
    return {
        "refresh_interval": DRILL_REFRESH_INTERVAL,
        "prometheus": {
            "url": prometheus_url or f"{server_url}/prometheus",
            "timeout": 2.0,
            # The world samples every SAMPLE_INTERVAL simulated seconds; a real
            # Prometheus started for the drill scrapes and evaluates every second.
            "sample_interval": prometheus_runner.SCRAPE_SECONDS if prometheus_url else SAMPLE_INTERVAL,
        },
        "clusters": {"drill": {"kubeconfig": str(kubeconfig), "context": "drill", "timeout": 10.0}},
        "services": services,
        "ui": {"theme": "default"},
        "slack": {"webhook_url_env": DRILL_SLACK_ENV, "channel": "#incidents-drill", "timeout": 2.0},
        "escalation": {"contacts": DRILL_CONTACTS},
        # Marks the console as a drill: its header, messages and exports say DRILL.
        "drill": scenario.name,
        **({"autopilot": autopilot} if autopilot else {}),
    }


DRILL_STORE = "drill-incidents.db"
"""A served drill's incident database, in its directory (its config's `incident.store`)."""


def slack_webhook_url(server_url: str) -> str:
    """The drill's Slack sink as a webhook URL (not a secret: it only records)."""
    return f"{server_url}/slack/webhook/drill"


def write_configs(
    scenario: Scenario, server_url: str, directory: Path, prometheus_url: str | None = None,
    autopilot: dict | None = None, autopilot_token: str | None = None,
) -> tuple[Path, Path]:
    """Write DIR/kubeconfig and DIR/config.yaml; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    kubeconfig = directory / "kubeconfig"
    namespace = scenario.services[0].namespace
    write_kubeconfig(kubeconfig, server_url, namespace)
    config_path = directory / "config.yaml"
    header = (
        f"# Console config for the drill {scenario.name!r} served at {server_url}.\n"
        "# Written by `rollback-console drill --serve-only --write-config`.\n"
    )
    if prometheus_url:
        header += f"# Metrics from a real Prometheus at {prometheus_url} scraping {server_url}/metrics.\n"
    config = console_config(scenario, server_url, kubeconfig, prometheus_url, autopilot)
    # Every command on this config (status, rollback, facts, export, the autopilot) keeps
    # the drill's incidents beside it, never in the real incident store.
    config["incident"] = {"store": DRILL_STORE}
    config_path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    # The config names the variable; DIR/env gives its value for a console started elsewhere.
    env = f"{DRILL_SLACK_ENV}={slack_webhook_url(server_url)}\n"
    if autopilot_token:
        env += f"{DRILL_AUTOPILOT_TOKEN_ENV}={autopilot_token}\n"
    if any(s.kind == "ecs" for s in scenario.services):
        # The config's ECS services sign their requests with these (dummy values the drill does not check).
        env += "".join(f"{name}={value}\n" for name, value in DRILL_CREDENTIAL_ENV.items())
    env_path = directory / "env"
    env_path.touch(mode=0o600)
    env_path.write_text(env)
    return kubeconfig, config_path


@dataclass
class RunningDrill:
    """A drill world being served, and where its console files are."""

    world: World
    server: DrillServer
    directory: Path
    config_path: Path
    kubeconfig_path: Path
    store_path: Path
    prometheus: RunningPrometheus | None = None
    alertmanager: RunningAlertmanager | None = None
    # The address the Alertmanager routes to (the autopilot's /alertmanager).
    autopilot_url: str | None = None
    autopilot: subprocess.Popen | None = None
    _owned_dir: bool = field(default=False, repr=False)

    def start_autopilot(self, *extra: str, store_path: Path | None = None) -> subprocess.Popen:
        """Run `rollback-console autopilot` on this drill's config and store (a subprocess,
        its output in DIR/autopilot.log); returns once it printed `ready`. `store_path`:
        another incident store (the console drill's record), default the drill's own."""
        self.autopilot = start_autopilot(self.config_path, store_path or self.store_path,
                                         self.directory / "autopilot.log", *extra)
        return self.autopilot

    def stop(self) -> None:
        if self.autopilot is not None:
            stop_process(self.autopilot)
        if self.alertmanager is not None:
            self.alertmanager.close()
        if self.prometheus is not None:
            self.prometheus.close()
        self.server.stop()
        if self._owned_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


def start(
    scenario: Scenario,
    speed: float = 1.0,
    directory: Path | None = None,
    start_at: datetime | None = None,
    with_prometheus: bool = False,
    with_alertmanager: bool = False,
) -> RunningDrill:
    """Build the world, serve it, write the console's files; the caller stops it.

    The world's t=0 is `start_at`, by default the scenario's `start` (or now).
    `with_prometheus` also starts a real Prometheus scraping the world
    (DIR/prometheus holds its config, recording rules and data) and points
    the console config at it; that needs speed 1 and a start at the wall-clock
    now, because Prometheus stamps samples with wall-clock time.
    `with_alertmanager` (implies `with_prometheus`) also starts a real
    Alertmanager (DIR/alertmanager) that Prometheus sends the runbook's
    AutoRollbackTrigger to and that routes it to the address in the written
    config's `autopilot:` section (the autopilot itself: `start_autopilot()`).
    Raises PrometheusUnavailable (or AlertmanagerUnavailable) when it cannot start."""
    with_prometheus = with_prometheus or with_alertmanager
    if with_prometheus and speed != 1.0:
        raise PrometheusUnavailable(
            "A real Prometheus scrapes on wall-clock time, so --with-prometheus runs at --speed 1 only."
        )
    if with_prometheus and start_at is None:
        start_at = datetime.now(timezone.utc).replace(microsecond=0)
    world = World.from_scenario(scenario, speed=speed, start=start_at)
    if with_prometheus:
        # Trainer controls may not pause or speed up a world a real Prometheus scrapes.
        world.time_locked = "a real Prometheus scrapes this drill on wall-clock time (--with-prometheus)"
    if any(s.kind == "ecs" for s in scenario.services):
        # Dummy keys (not secrets) so a console in this process can sign ECS requests.
        for name, value in DRILL_CREDENTIAL_ENV.items():
            os.environ.setdefault(name, value)
    server = DrillServer(world).start()
    # A console in this process posts to this drill's sink (the variable its config names).
    os.environ[DRILL_SLACK_ENV] = slack_webhook_url(server.url)
    owned = directory is None
    directory = Path(tempfile.mkdtemp(prefix="rollback-drill-")) if directory is None else directory
    prometheus = alertmanager = None
    autopilot = token = autopilot_url = None
    try:
        if with_alertmanager:
            from console.drill import alertmanager_runner

            port = alertmanager_runner.free_port()
            token = secrets.token_urlsafe(24)
            os.environ[DRILL_AUTOPILOT_TOKEN_ENV] = token
            autopilot = {"listen": f"127.0.0.1:{port}", "token_env": DRILL_AUTOPILOT_TOKEN_ENV}
            autopilot_url = f"http://127.0.0.1:{port}/alertmanager"
            alertmanager = alertmanager_runner.start([autopilot_url], token, directory / "alertmanager")
        if with_prometheus:
            prometheus = prometheus_runner.start(f"{server.url}/metrics", directory / "prometheus",
                                                 alertmanager_url=alertmanager.url if alertmanager else None)
    except BaseException:
        if alertmanager is not None:
            alertmanager.close()
        server.stop()
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    kubeconfig, config_path = write_configs(scenario, server.url, directory, prometheus.url if prometheus else None,
                                            autopilot, token)
    return RunningDrill(
        world=world,
        server=server,
        directory=directory,
        config_path=config_path,
        kubeconfig_path=kubeconfig,
        # Drill incidents stay beside the drill, out of the real incident store.
        store_path=directory / DRILL_STORE,
        prometheus=prometheus,
        alertmanager=alertmanager,
        autopilot_url=autopilot_url,
        _owned_dir=owned,
    )


def serve(
    scenario: Scenario, speed: float, directory: Path | None, out: Callable[[str], None], with_prometheus: bool = False,
    with_alertmanager: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM (the `--serve-only` mode); prints `ready`.

    The world starts at the wall-clock now, not at the scenario's `start`:
    kubectl, `rollback-console status` and a real Prometheus run on the wall
    clock and would otherwise see every timestamp years old and every metric stale."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    running = start(scenario, speed=speed, directory=directory, start_at=now, with_prometheus=with_prometheus,
                    with_alertmanager=with_alertmanager)
    if with_alertmanager:
        try:
            running.start_autopilot()
        except BaseException:
            running.stop()
            raise
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        out(f"drill {scenario.name!r} serving at {running.server.url}")
        out(f"kubeconfig: {running.kubeconfig_path}")
        out(f"console config: {running.config_path}")
        out(f"slack sink: export {DRILL_SLACK_ENV}={slack_webhook_url(running.server.url)} "
            f"(also in {running.directory / 'env'}); GET {running.server.url}/slack/messages lists what was posted")
        if any(s.kind == "ecs" for s in scenario.services):
            exports = " ".join(f"{name}={value}" for name, value in DRILL_CREDENTIAL_ENV.items())
            out(f"ECS API: {running.server.url}/ecs (dummy credentials for a console elsewhere: export {exports}; "
                f"also in {running.directory / 'env'})")
        if running.prometheus is not None:
            out(f"prometheus: {running.prometheus.url} (scraping {running.server.url}/metrics)")
        out(f"trainer: rollback-console drill-ctl --url {running.server.url} pause|resume|speed X|note TEXT|fact NAME=VALUE|outage SERVICE")
        if running.alertmanager is not None:
            out(f"alertmanager: {running.alertmanager.url} (routing AutoRollbackTrigger to {running.autopilot_url})")
            out(f"autopilot: {running.autopilot_url} (token in {running.directory / 'env'}, "
                f"log {running.directory / 'autopilot.log'})")
        out("ready")
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()


AUTOPILOT_READY_TIMEOUT = 30.0
"""Seconds to wait for a drill's autopilot to print `ready`."""


def start_autopilot(config_path: Path, store_path: Path, log_path: Path, *extra: str) -> subprocess.Popen:
    """`rollback-console autopilot --config CONFIG --store STORE` as a subprocess
    (output appended to `log_path`); returns once the log says `ready`."""
    with log_path.open("ab") as log:
        start_at = log.tell()
        process = subprocess.Popen(
            [sys.executable, "-m", "console", "autopilot", "--config", str(config_path), "--store", str(store_path),
             *extra], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + AUTOPILOT_READY_TIMEOUT
    while time.monotonic() < deadline:
        with log_path.open("rb") as log:
            log.seek(start_at)
            if b"\nready\n" in b"\n" + log.read():
                return process
        if process.poll() is not None:
            raise AlertmanagerUnavailable(f"the autopilot exited at start (code {process.returncode}); see {log_path}.")
        time.sleep(0.05)
    stop_process(process)
    raise AlertmanagerUnavailable(f"the autopilot did not print ready within {AUTOPILOT_READY_TIMEOUT:.0f} s; see {log_path}.")


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, wait (30 s: an autopilot finishing its step), SIGKILL if it will not go."""
    prometheus_runner.stop_process(process, 30.0)
