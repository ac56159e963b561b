"""Starting a drill: the world, its server on 127.0.0.1, and the files that
point a console (and kubectl) at it."""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from console.drill.scenario import Scenario
from console.drill.server import DrillServer, write_kubeconfig
from console.drill.world import World

DRILL_REFRESH_INTERVAL = 2.0
"""Drills refresh faster than the production default: trainees watch them closely."""


def console_config(scenario: Scenario, server_url: str, kubeconfig: Path) -> dict:
    """A console config (as data) for the drill world served at `server_url`."""
    services = []
    for service in scenario.services:
        if service.kind != "deployment":
            # Blue-green and canary services get their own platforms in a later issue;
            # until then the console watches the deployments it can roll back.
            continue
        services.append(
            {
                "name": service.name,
                "platform": "kubernetes",
                "cluster": "drill",
                "namespace": service.namespace,
                "deployment": service.name,
                "health_url": f"{server_url}/health/{service.name}",
            }
        )
    return {
        "refresh_interval": DRILL_REFRESH_INTERVAL,
        "prometheus": {"url": f"{server_url}/prometheus", "timeout": 2.0},
        "clusters": {"drill": {"kubeconfig": str(kubeconfig), "context": "drill", "timeout": 10.0}},
        "services": services,
        "ui": {"theme": "default"},
    }


def write_configs(scenario: Scenario, server_url: str, directory: Path) -> tuple[Path, Path]:
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
    config_path.write_text(header + yaml.safe_dump(console_config(scenario, server_url, kubeconfig), sort_keys=False))
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
    _owned_dir: bool = field(default=False, repr=False)

    def stop(self) -> None:
        self.server.stop()
        if self._owned_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


def start(
    scenario: Scenario, speed: float = 1.0, directory: Path | None = None, start_at: datetime | None = None
) -> RunningDrill:
    """Build the world, serve it, write the console's files; the caller stops it.

    The world's t=0 is `start_at`, by default the scenario's `start` (or now)."""
    world = World.from_scenario(scenario, speed=speed, start=start_at)
    server = DrillServer(world).start()
    owned = directory is None
    directory = Path(tempfile.mkdtemp(prefix="rollback-drill-")) if directory is None else directory
    kubeconfig, config_path = write_configs(scenario, server.url, directory)
    return RunningDrill(
        world=world,
        server=server,
        directory=directory,
        config_path=config_path,
        kubeconfig_path=kubeconfig,
        # Drill incidents stay beside the drill, out of the real incident store.
        store_path=directory / "drill-incidents.db",
        _owned_dir=owned,
    )


def serve(scenario: Scenario, speed: float, directory: Path | None, out: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM (the `--serve-only` mode); prints `ready`.

    The world starts at the wall-clock now, not at the scenario's `start`:
    kubectl, `rollback-console status` and a real Prometheus run on the wall
    clock and would otherwise see every timestamp years old and every metric stale."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    running = start(scenario, speed=speed, directory=directory, start_at=now)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        out(f"drill {scenario.name!r} serving at {running.server.url}")
        out(f"kubeconfig: {running.kubeconfig_path}")
        out(f"console config: {running.config_path}")
        out("ready")
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()
