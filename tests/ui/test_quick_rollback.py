"""The runbook's "Quick Rollback (Keep Previous Running)" in the console (R),
for a Docker Compose service against a real Docker engine, Compose v2 and
registry (tests/integration/docker_fixture.py; missing binaries skip locally
and fail in CI). That R is not offered for Kubernetes is in test_app_keys.py."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from docker_fixture import DockerWorld, free_port
from support import wait_for

from console.clock import SystemClock
from console.config import load
from console.model import Action
from console.session import Session
from console.store import Store
from console.ui.app import build_app
from console.ui.messages import RollbackFinished
from console.ui.screens.confirm import ConfirmRollbackScreen
from textual.widgets import Static

pytestmark = pytest.mark.integration

SERVICE = "order-service"
COMPOSE = """\
name: {project}
services:
  order-service:
    image: {image}
    network_mode: host
    command: ["{port}"]
    stop_grace_period: 2s
"""


def health(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def compose_session(docker_world: DockerWorld, tmp_path: Path, monkeypatch):
    """order-service 1.2.3 running under Compose, 1.2.2 kept as a stopped
    previous container, and a console Session configured for it."""
    world = docker_world
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    project = f"shop{uuid.uuid4().hex[:8]}"
    previous = f"{project}-previous"
    port = free_port()
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text(COMPOSE.format(project=project, image=world.image("1.2.3"), port=port))

    def compose(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "compose", "-f", str(compose_file), *args], env=world.env(),
                              capture_output=True, text=True, check=True, timeout=60)

    compose("up", "-d")
    world.docker("create", "--name", previous, "--network", "host", world.image("1.2.2"), str(port))
    config_path = tmp_path / "console.yaml"
    config_path.write_text(
        "refresh_interval: 0.5\n"
        "services:\n"
        "  - name: order-service\n"
        "    platform: compose\n"
        f"    compose_file: {compose_file}\n"
        f"    compose_command: [{world.compose_binary}]\n"
        f"    docker_host: {world.docker_host}\n"
        f"    registry: {world.registry_url}\n"
        f"    previous_container: {previous}\n"
        f"    health_url: http://127.0.0.1:{port}/cgi-bin/health\n"
    )
    store = Store(tmp_path / "incidents.db")
    try:
        session = Session(load(config_path), store, clock=SystemClock(), operator="trainee@drill")
        yield session, compose, port
    finally:
        store.close()
        subprocess.run(["docker", "compose", "-f", str(compose_file), "down", "-t", "1"], env=world.env(),
                       capture_output=True, timeout=60)
        world.docker("rm", "-f", previous, check=False)


async def test_R_plans_and_runs_the_quick_rollback_of_a_compose_service(compose_session) -> None:
    session, compose, port = compose_session
    messages: list[object] = []
    app = build_app(session, animate=False)
    async with app.run_test(size=(140, 45), message_hook=messages.append) as pilot:
        # 1.2.3 answers its health check with 500: ROLLBACK NOW once the failure is more than a blip
        # (the gate lets a rollback through only then).
        await wait_for(pilot, lambda: SERVICE in app.views and app.views[SERVICE].decision.action is Action.ROLLBACK_NOW,
                       "ROLLBACK NOW")
        assert "quick_rollback" in {b.binding.action for b in app.active_bindings.values()}
        assert any("Quick rollback" in c.title for c in app.get_system_commands(app.screen))

        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the quick plan")
        plan = app.screen.plan
        assert plan.to_versions == ("1.2.2",)
        assert plan.calls[0].target.endswith("up -d --scale order-service=0 order-service")
        assert plan.calls[1].target.startswith("docker start ") and plan.calls[1].target.endswith("-previous")

        await pilot.press("y")
        finished = lambda: [m for m in messages if isinstance(m, RollbackFinished)]  # noqa: E731
        await wait_for(pilot, lambda: bool(finished()), "the quick rollback to finish", timeout=90)
        assert finished()[0].ok, finished()[0].error
        await wait_for(pilot, lambda: health(f"http://127.0.0.1:{port}/cgi-bin/health")[0] == 200,
                       "the previous container to answer", timeout=10)
        assert health(f"http://127.0.0.1:{port}/cgi-bin/health") == (200, {"status": "healthy", "version": "1.2.2"})
        assert compose("ps", "-q", SERVICE).stdout.strip() == ""  # scaled to 0
        await pilot.press("q")


async def test_after_R_the_r_key_plans_the_full_rollback_that_finishes_it(compose_session, docker_world: DockerWorld) -> None:
    session, compose, port = compose_session
    messages: list[object] = []
    finished = lambda: [m for m in messages if isinstance(m, RollbackFinished)]  # noqa: E731
    app = build_app(session, animate=False)
    async with app.run_test(size=(140, 45), message_hook=messages.append) as pilot:
        # 1.2.3 answers its health check with 500: ROLLBACK NOW once the failure is more than a blip
        # (the gate lets a rollback through only then).
        await wait_for(pilot, lambda: SERVICE in app.views and app.views[SERVICE].decision.action is Action.ROLLBACK_NOW,
                       "ROLLBACK NOW")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the quick plan")
        await pilot.press("y")
        await wait_for(pilot, lambda: len(finished()) == 1, "the quick rollback to finish", timeout=90)
        assert finished()[0].ok, finished()[0].error

        # Not "already on the target": the compose file still names 1.2.3, so r plans the full rollback.
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the full plan")
        plan = app.screen.plan
        assert (plan.from_versions, plan.to_versions) == (("1.2.3",), ("1.2.2",))
        assert plan.choice.startswith("1.2.2: it finishes the quick rollback")
        shown = "\n".join(str(widget.render()) for widget in app.screen.query(Static))
        assert "Target 1.2.2: it finishes the quick rollback" in shown  # the dialog says which and why
        assert any(call.target.startswith("docker stop ") for call in plan.calls)

        await pilot.press("y")
        await wait_for(pilot, lambda: len(finished()) == 2, "the full rollback to finish", timeout=90)
        assert finished()[1].ok, finished()[1].error
        await pilot.press("q")
    images = compose("ps", "--format", "{{.Image}}", SERVICE).stdout.split()
    assert images == [docker_world.image("1.2.2")]
    assert health(f"http://127.0.0.1:{port}/cgi-bin/health") == (200, {"status": "healthy", "version": "1.2.2"})
