"""The Compose platform against a real Docker engine, Compose v2 and registry
(see docker_fixture.py): history, plans, the runbook's rollback, the quick
rollback, a failing pull, and the headless command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest_adapters import require
from docker_fixture import DockerWorld, free_port
from support import wait_until

from console.model import SCHEMA_ANNOTATION  # noqa: E402
from console.platforms.base import Forbidden, NotFound, Unavailable  # noqa: E402
from console.platforms.compose import ComposePlatform  # noqa: E402

pytestmark = pytest.mark.integration

SERVICE = "order-service"

COMPOSE_TEMPLATE = """\
# Shop stack on host-1. Roll back by changing the order-service tag only.
name: {project}

services:
  order-service:
    # Deployed by CI (pipeline #4711); the previous release is 1.2.2.
    image: {image}   # current release
    network_mode: host
    command: ["{port}"]
    stop_grace_period: 2s
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:{port}/cgi-bin/health"]
      interval: 1s
      timeout: 1s
      retries: 1

  # A neighbour the rollback must leave alone.
  worker:
    image: '{worker_image}'
    network_mode: host
    command: ['{worker_port}']
"""


# The same stack where order-service needs its worker healthy: `up -d order-service`
# starts the worker first and fails when it cannot (its port taken).
DEPENDENT_TEMPLATE = COMPOSE_TEMPLATE.replace("""    stop_grace_period: 2s
""", """    stop_grace_period: 2s
    depends_on:
      worker: {{condition: service_healthy}}
""", 1) + """    stop_grace_period: 2s
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:{worker_port}/"]
      interval: 1s
      timeout: 1s
      retries: 2
"""


@dataclass
class Project:
    """One compose project running order-service 1.2.3 (and a worker on 1.2.1)."""

    world: DockerWorld
    name: str
    directory: Path
    compose_file: Path
    port: int
    original: str
    worker_port: int = 0

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/health"

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker", "compose", "-f", str(self.compose_file), *args],
            env=self.world.env(), capture_output=True, text=True, check=check, timeout=60,
        )

    def running(self) -> list[dict]:
        out = self.compose("ps", "--format", "json", SERVICE).stdout.strip()
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def platform(self, **kwargs) -> ComposePlatform:
        options = dict(
            registry=self.world.registry_url,
            docker_host=self.world.docker_host,
            seen_path=self.directory / "seen.json",
            previous_container=f"{self.name}-previous",
        )
        options.update(kwargs)
        return ComposePlatform(SERVICE, self.compose_file, **options)

    def seen_running(self, *tags: str, path: Path | None = None) -> None:
        """What the console's record (compose-images.json) holds after it saw
        these tags run in earlier deploys."""
        path = path or self.directory / "seen.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        entry = data.setdefault(f"{self.compose_file.resolve()}#{SERVICE}", {})
        for tag in tags:
            entry[self.world.image(tag)] = "2026-11-01T10:00:00+00:00"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


def get_health(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def start_project(world: DockerWorld, tmp_path: Path, image: str, template: str = COMPOSE_TEMPLATE) -> Project:
    """A compose project in tmp_path/stack running order-service on `image`."""
    name = f"shop{uuid.uuid4().hex[:8]}"
    directory = tmp_path / "stack"
    directory.mkdir()
    port, worker_port = free_port(), free_port()
    text = template.format(
        project=name,
        image=image,
        port=port,
        worker_image=world.image("1.2.1"),
        worker_port=worker_port,
    )
    compose_file = directory / "docker-compose.yml"
    compose_file.write_text(text)
    proj = Project(world, name, directory, compose_file, port, text, worker_port)
    proj.compose("up", "-d")
    return proj


def stop_project(proj: Project) -> None:
    proj.compose("down", "-t", "1", check=False)
    proj.world.docker("rm", "-f", f"{proj.name}-previous", check=False)


@pytest.fixture
def project(docker_world: DockerWorld, tmp_path: Path):
    proj = start_project(docker_world, tmp_path, docker_world.image("1.2.3"))
    try:
        yield proj
    finally:
        stop_project(proj)


def commit_history(project: Project, *tags: str) -> list[str]:
    """Put the project's compose file in a new git repository with one commit
    per tag, each naming that order-service tag (the last is the file as it
    is now); returns the short commit hashes, oldest first."""
    require(shutil.which("git") is not None, "git is not installed")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
                              cwd=project.directory, capture_output=True, text=True, check=True, timeout=30).stdout

    git("init", "-q")
    commits = []
    for tag in tags:
        project.compose_file.write_text(project.original.replace("order-service:1.2.3", f"order-service:{tag}"))
        git("add", "docker-compose.yml")
        git("commit", "-q", "-m", f"deploy order-service {tag}")
        commits.append(git("rev-parse", "--short=12", "HEAD").strip())
    assert project.compose_file.read_text() == project.original
    return commits


def test_history_lists_tags_newest_first_with_the_running_one_current(project: Project) -> None:
    platform = project.platform()
    history = platform.history()
    assert [r.versions[0] for r in history] == ["1.2.3", "1.2.2", "1.2.1"]
    assert [r.number for r in history] == [3, 2, 1]
    assert [r.current for r in history] == [True, False, False]
    assert "registry" in history[1].change_cause and "engine" in history[1].change_cause
    # Only the running tag was seen running: the others are listed, marked.
    assert [r.change_cause.endswith("never seen running") for r in history] == [False, True, True]
    assert history[0].images == (project.world.image("1.2.3"),)
    # The console recorded what it saw running.
    seen = json.loads((project.directory / "seen.json").read_text())
    assert list(seen.values())[0].keys() == {project.world.image("1.2.3")}
    health = platform.health()
    assert (health.desired, health.available, health.ready) == (1, 1, 0)  # 1.2.3 fails its healthcheck


def test_plan_shows_the_file_edit_and_each_command_and_changes_nothing(project: Project) -> None:
    project.seen_running("1.2.1", "1.2.2")
    plan = project.platform().plan_rollback()
    assert (plan.from_versions, plan.to_versions) == (("1.2.3",), ("1.2.2",))
    assert (plan.from_revision, plan.to_revision) == (3, 2)
    edit, pull, up, ps, logs = plan.calls
    assert edit.method == "edit" and edit.target == f"{project.compose_file}:7"
    assert f"- image: {project.world.image('1.2.3')}   # current release" in edit.body
    assert f"+ image: {project.world.image('1.2.2')}   # current release" in edit.body
    assert pull.method == up.method == "exec"
    assert pull.target == f"docker compose -f {project.compose_file} pull order-service"
    assert up.target.endswith("up -d order-service")
    assert ps.target.endswith("ps -a --format json order-service")
    assert logs.target.endswith("logs order-service --tail=50 --no-color")
    assert project.compose_file.read_text() == project.original
    assert not list(project.directory.glob("*.bak-*"))


def test_rollback_edits_only_the_image_line_pulls_and_runs_the_previous_tag(project: Project) -> None:
    world = project.world
    # Only the registry has 1.2.2 now: the pull must really fetch it.
    world.docker("image", "rm", world.image("1.2.2"))
    project.seen_running("1.2.2")  # it ran here before 1.2.3 was deployed
    platform = project.platform()
    assert next(r for r in platform.history() if r.versions == ("1.2.2",)).change_cause == "registry, seen running"

    steps = list(platform.execute(platform.plan_rollback(), timeout=60))

    assert steps[-1].done and not any(s.failed for s in steps), [s.message for s in steps]
    messages = "\n".join(s.message for s in steps)
    assert "pull order-service\n" in messages and "Pulled" in messages
    assert "order-service 1.2.2 listening" in messages  # the last 50 log lines
    assert "1 of 1 order-service containers running 1.2.2 (1 healthy)" in steps[-1].message
    # Only the tag changed: comments, quoting, order and the neighbour are byte for byte the same.
    expected = project.original.replace(world.image("1.2.3"), world.image("1.2.2"))
    assert project.compose_file.read_text() == expected
    backups = list(project.directory.glob("docker-compose.yml.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == project.original
    [container] = project.running()
    assert container["Image"] == world.image("1.2.2") and container["Health"] == "healthy"
    assert get_health(project.health_url) == (200, {"status": "healthy", "version": "1.2.2"})
    health = platform.verify()
    assert (health.desired, health.ready, health.updated) == (1, 1, 1)
    assert [r.versions[0] for r in platform.history() if r.current] == ["1.2.2"]


def test_quick_rollback_scales_to_zero_and_starts_the_previous_container(project: Project) -> None:
    world = project.world
    previous = f"{project.name}-previous"
    # What a keep-previous deploy leaves behind: the old release, stopped, outside Compose's labels.
    world.docker("create", "--name", previous, "--network", "host", world.image("1.2.2"), str(project.port))
    platform = project.platform()

    plan = platform.plan_rollback(quick=True)
    assert plan.to_versions == ("1.2.2",) and plan.to_revision == 2
    assert plan.calls[0].target.endswith("up -d --scale order-service=0 order-service")
    assert plan.calls[1].target == f"docker start {previous}"
    assert "full rollback" in plan.summary

    steps = list(platform.execute(plan, timeout=30))
    assert steps[-1].done and not any(s.failed for s in steps), [s.message for s in steps]
    assert "order-service 1.2.2 listening" in "\n".join(s.message for s in steps)
    assert project.running() == []
    assert get_health(project.health_url) == (200, {"status": "healthy", "version": "1.2.2"})
    assert project.compose_file.read_text() == project.original  # the quick way leaves the file alone
    assert [r.versions[0] for r in platform.history() if r.current] == ["1.2.2"]
    assert platform.health().ready == 1


def test_without_git_the_consoles_record_then_the_engines_creation_times_pick_the_target(project: Project) -> None:
    platform = project.platform()
    # A console that never ran here, a file outside git: the newest image created before 1.2.3.
    plan = platform.plan_rollback()
    assert (plan.to_revision, plan.to_versions) == (2, ("1.2.2",))
    assert plan.choice.startswith("1.2.2: the newest image on the engine created before 1.2.3 (")
    assert f"Target {plan.choice}." in plan.summary
    assert "1.2.2 was never seen running here (engine, registry)" in plan.summary
    assert [(c.version, c.sources, c.seen_running, c.rolled_back_from) for c in plan.candidates] == [
        ("1.2.2", ("engine", "registry"), False, False),
        ("1.2.1", ("engine", "registry"), False, False),
    ]
    assert plan.candidates[1].created < plan.candidates[0].created  # built one after the other
    # The console's record of what ran here beats creation times: 1.2.1 ran, 1.2.2 never did.
    project.seen_running("1.2.1")
    plan = platform.plan_rollback()
    assert (plan.to_revision, plan.to_versions) == (1, ("1.2.1",))
    assert plan.choice == "1.2.1: the newest version below 1.2.3 the console saw running here"
    assert "never seen running" not in plan.summary
    history = platform.history()
    assert [r.versions[0] for r in history if not r.change_cause.endswith("never seen running")] == ["1.2.3", "1.2.1"]
    # Any other tag can be chosen explicitly, with a warning in the plan.
    explicit = platform.plan_rollback(2)
    assert explicit.to_versions == ("1.2.2",) and "1.2.2 was never seen running here" in explicit.summary
    assert platform.plan_rollback(to_tag="1.2.2").to_revision == 2
    with pytest.raises(NotFound, match=r"9\.9\.9 is not a tag of order-service .*revisions: 1=1\.2\.1, 2=1\.2\.2, 3=1\.2\.3"):
        platform.plan_rollback(to_tag="9.9.9")
    assert project.compose_file.read_text() == project.original


def test_an_image_label_says_which_migration_a_tag_needs(project: Project) -> None:
    world = project.world
    # A release built with `LABEL rollback-console/schema=...`.
    container = world.docker("create", world.image("1.2.2"), "0").stdout.strip()
    try:
        world.docker("commit", "-c", f"LABEL {SCHEMA_ANNOTATION}=0042_split_address", container, world.image("1.2.4"))
    finally:
        world.docker("rm", container, check=False)
    try:
        platform = project.platform()
        history = {r.versions[0]: r for r in platform.history()}
        again = {r.versions[0]: r.schema for r in platform.history()}  # answered from the cache by image ID
    finally:
        world.docker("image", "rm", world.image("1.2.4"), check=False)
    assert history["1.2.4"].schema == "0042_split_address" and again["1.2.4"] == "0042_split_address"
    assert history["1.2.2"].schema is None and history["1.2.3"].schema is None


def test_quick_rollback_without_a_previous_container_says_what_to_do(project: Project) -> None:
    with pytest.raises(NotFound, match=r"no container named .*-previous.*full rollback"):
        project.platform().plan_rollback(quick=True)


def test_a_tag_missing_in_the_registry_fails_the_pull_and_restores_the_file(project: Project) -> None:
    world = project.world
    # 1.2.0 exists in the local engine only: it shows in the history, but cannot be pulled.
    world.docker("tag", world.image("1.2.1"), world.image("1.2.0"))
    try:
        platform = project.platform()
        target = next(r for r in platform.history() if r.versions == ("1.2.0",))
        steps = list(platform.execute(platform.plan_rollback(target.number), timeout=60))
    finally:
        world.docker("image", "rm", world.image("1.2.0"), check=False)

    failed = steps[-1]
    assert failed.failed and not failed.done
    assert "pull order-service` failed" in failed.message
    assert "not in the registry" in failed.message
    assert "restored from docker-compose.yml.bak-" in failed.message
    assert "still runs 1.2.3" in failed.message
    assert project.compose_file.read_text() == project.original
    [container] = project.running()
    assert container["Image"] == world.image("1.2.3")


def test_an_unreachable_engine_is_a_sentence(project: Project, tmp_path: Path) -> None:
    platform = project.platform(docker_host=f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(Unavailable, match="Docker engine is not reachable.*docker_host"):
        platform.history()
    missing = project.platform(compose_command=["no-such-compose"])
    with pytest.raises(Unavailable, match="`no-such-compose` is not installed"):
        missing.health()


def headless(project: Project, tmp_path: Path, *args: str, extra: str = "", registry: str | None = None) -> subprocess.CompletedProcess:
    """`rollback-console rollback order-service ARGS` with a config for this
    project, the console's state (its record of tags seen running) in tmp_path/state."""
    world = project.world
    config = tmp_path / "console.yaml"
    config.write_text(
        "services:\n"
        "  - name: order-service\n"
        "    platform: compose\n"
        f"    compose_file: {project.compose_file.relative_to(tmp_path)}\n"
        # The standalone binary name, as `docker-compose` users configure it.
        f"    compose_command: [{world.compose_binary}]\n"
        f"    docker_host: {world.docker_host}\n"
        f"    registry: {registry or world.registry_url}\n"
        f"    health_url: {project.health_url}\n"
        + extra
    )
    env = {**world.env(), "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    return subprocess.run(
        [sys.executable, "-m", "console", "rollback", SERVICE, "--config", str(config), "--reason", "x", *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )


def test_headless_rollback_command_against_the_engine(project: Project, tmp_path: Path) -> None:
    world = project.world
    project.seen_running("1.2.2", path=tmp_path / "state" / "rollback-console" / "compose-images.json")
    done = headless(project, tmp_path, "--yes", "--timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Plan: revision 3 → 2 (1.2.3 → 1.2.2)" in done.stdout
    assert "Service healthy" in done.stdout
    assert project.compose_file.read_text() == project.original.replace(world.image("1.2.3"), world.image("1.2.2"))
    assert get_health(project.health_url)[0] == 200
    # The commands and what they printed are in the incident's timeline.
    from console.store import Store

    with Store(tmp_path / "state" / "rollback-console" / "incidents.db") as store:
        events = store.events(store.open_incident_for(SERVICE), newest_first=False)
    texts = "\n".join(e.text for e in events)
    assert f"{world.compose_binary} -f {project.compose_file} pull order-service" in texts
    assert "Recreated" in texts and "order-service 1.2.2 listening" in texts


def test_headless_quick_rollback_starts_the_previous_container(project: Project, tmp_path: Path) -> None:
    world = project.world
    previous = f"{project.name}-previous"
    world.docker("create", "--name", previous, "--network", "host", world.image("1.2.2"), str(project.port))
    extra = f"    previous_container: {previous}\n"

    dry = headless(project, tmp_path, "--quick", "--dry-run", extra=extra)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"docker start {previous}" in dry.stdout and "up -d --scale order-service=0 order-service" in dry.stdout

    done = headless(project, tmp_path, "--quick", "--yes", "--timeout", "60", extra=extra)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Plan: revision 3 → 2 (1.2.3 → 1.2.2)" in done.stdout
    assert "Rollback of order-service complete. Service healthy." in done.stdout
    assert project.running() == []
    assert get_health(project.health_url) == (200, {"status": "healthy", "version": "1.2.2"})
    assert project.compose_file.read_text() == project.original  # the quick way leaves the file alone


def test_headless_rollback_to_a_revision_or_container_that_does_not_exist_is_a_usage_error(
    project: Project, tmp_path: Path
) -> None:
    done = headless(project, tmp_path, "--to-revision", "9", "--yes")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Cannot plan the rollback: revision 9 not found in the history of order-service" in done.stdout
    done = headless(project, tmp_path, "--quick", "--yes")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no container named order-service_previous_container" in done.stdout
    # A tag by name.
    done = headless(project, tmp_path, "--to-tag", "1.2.1", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Plan: revision 3 → 1 (1.2.3 → 1.2.1)" in done.stdout and "Target 1.2.1: it was asked for (revision 1)" in done.stdout
    # A tag no source knows: a usage error naming the tags there are.
    done = headless(project, tmp_path, "--to-tag", "9.9.9", "--yes")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "9.9.9 is not a tag of order-service" in done.stderr and "(tags: 1.2.3, 1.2.2, 1.2.1)" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert project.compose_file.read_text() == project.original


# --- an operator who never ran the console before the incident --------------------
# Every test below starts from a state directory the console has never written to.


def timeline(tmp_path: Path) -> str:
    from console.store import Store

    with Store(tmp_path / "state" / "rollback-console" / "incidents.db") as store:
        events = store.events(store.open_incident_for(SERVICE), newest_first=False)
    return "\n".join(e.text for e in events)


def test_a_fresh_console_rolls_back_to_what_the_files_git_history_named_before(project: Project, tmp_path: Path) -> None:
    world = project.world
    # Deployed from git: 1.2.1, then 1.2.3. 1.2.2 exists on the engine and in the
    # registry (newer than 1.2.1 by both version and creation time) but never ran here.
    first, _ = commit_history(project, "1.2.1", "1.2.3")
    assert not (tmp_path / "state").exists()
    # The history marks where a plain rollback goes (the TUI shows it with ↩).
    marked = project.platform(seen_path=tmp_path / "elsewhere.json").history()
    assert [(r.versions[0], r.rollback_target) for r in marked] == [("1.2.3", False), ("1.2.2", False), ("1.2.1", True)]
    assert marked[2].change_cause == "engine, git history, registry; never seen running"

    dry = headless(project, tmp_path, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "Plan: revision 3 → 1 (1.2.3 → 1.2.1)" in dry.stdout
    assert f"Target 1.2.1: the compose file named it before 1.2.3 (git commit {first}, " in dry.stdout
    assert f"the compose file's git history says it was deployed (commit {first})" in dry.stdout
    assert project.compose_file.read_text() == project.original

    done = headless(project, tmp_path, "--yes", "--timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Service healthy" in done.stdout
    assert project.compose_file.read_text() == project.original.replace(world.image("1.2.3"), world.image("1.2.1"))
    [container] = project.running()
    assert container["Image"] == world.image("1.2.1")
    assert get_health(project.health_url) == (200, {"status": "healthy", "version": "1.2.1"})
    assert f"Target 1.2.1: the compose file named it before 1.2.3 (git commit {first}" in timeline(tmp_path)
    # The console now remembers where it went from: 1.2.3 is marked, and never the default again.
    history = ComposePlatform(SERVICE, project.compose_file, registry=world.registry_url,
                              seen_path=tmp_path / "state" / "rollback-console" / "compose-images.json").history()
    assert next(r for r in history if r.versions == ("1.2.3",)).change_cause.endswith("rolled back from")


@pytest.fixture
def unreachable_registry_project(docker_world: DockerWorld, tmp_path: Path):
    """order-service 1.2.3 from a registry that is down (127.0.0.1:a free port):
    its 1.2.3 image is on the engine, its 1.2.2 is not."""
    world = docker_world
    dead = f"127.0.0.1:{free_port()}"
    images = [f"{dead}/order-service:{tag}" for tag in ("1.2.2", "1.2.3")]
    world.docker("tag", world.image("1.2.3"), images[1])
    proj = start_project(world, tmp_path, images[1])
    try:
        yield proj, dead
    finally:
        stop_project(proj)
        for image in images:
            world.docker("image", "rm", image, check=False)


def test_with_the_registry_down_the_failed_pull_names_the_registry_and_restores_the_file(
    unreachable_registry_project, tmp_path: Path
) -> None:
    project, dead = unreachable_registry_project
    commit_history(project, "1.2.2", "1.2.3")

    done = headless(project, tmp_path, "--yes", "--timeout", "60", registry=f"http://{dead}")

    assert done.returncode == 1, done.stdout + done.stderr
    # The git history still gave the previous version; the registry's tags could not be read.
    assert "Target 1.2.2: the compose file named it before 1.2.3" in done.stdout
    assert f"Not consulted: Cannot reach the registry at http://{dead}" in done.stdout
    assert f"The registry {dead} is not reachable: the Docker engine answered" in done.stdout
    assert "Docker engine is not reachable" not in done.stdout
    assert "restored from docker-compose.yml.bak-" in done.stdout and "still runs 1.2.3" in done.stdout
    assert project.compose_file.read_text() == project.original
    [container] = project.running()
    assert container["Image"] == f"{dead}/order-service:1.2.3"


def test_after_a_quick_rollback_a_plain_rollback_finishes_it_with_a_hand_over(project: Project, tmp_path: Path) -> None:
    world = project.world
    previous = f"{project.name}-previous"
    world.docker("create", "--name", previous, "--network", "host", world.image("1.2.2"), str(project.port))
    extra = f"    previous_container: {previous}\n"
    assert not (tmp_path / "state").exists()
    quick = headless(project, tmp_path, "--quick", "--yes", "--timeout", "60", extra=extra)
    assert quick.returncode == 0, quick.stdout + quick.stderr
    assert get_health(project.health_url) == (200, {"status": "healthy", "version": "1.2.2"})

    full = headless(project, tmp_path, "--yes", "--timeout", "60", extra=extra)

    assert full.returncode == 0, full.stdout + full.stderr
    assert "nothing to do" not in full.stdout
    assert "Plan: revision 3 → 2 (1.2.3 → 1.2.2)" in full.stdout
    assert f"Target 1.2.2: it finishes the quick rollback: {previous} serves 1.2.2" in full.stdout
    assert f"$ docker stop {previous}" in full.stdout and f"$ docker rm {previous}" in full.stdout
    assert "address already in use" not in full.stdout.lower()
    assert "Rollback of order-service complete. Service healthy." in full.stdout
    assert project.compose_file.read_text() == project.original.replace(world.image("1.2.3"), world.image("1.2.2"))
    [container] = project.running()
    assert container["Image"] == world.image("1.2.2") and container["Health"] == "healthy"
    assert world.docker("container", "inspect", previous, check=False).returncode != 0  # handed over, removed
    assert get_health(project.health_url) == (200, {"status": "healthy", "version": "1.2.2"})
    texts = timeline(tmp_path)
    assert texts.count("Rollback started: order-service 1.2.3 -> 1.2.2") == 2  # the quick one, then the full one
    assert f"$ docker stop {previous}" in texts and f"$ docker rm {previous}" in texts

    # Now it is done: a third run neither toggles back to 1.2.3 nor steps further back to
    # 1.2.1 (Compose's plain rollback targets the revision before): it is on its own
    # rollback's target, as a second `rollback` on Kubernetes is; nothing changes.
    again = headless(project, tmp_path, "--yes", extra=extra)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "order-service is already on the target 1.2.2" in again.stdout and "nothing to do" in again.stdout
    assert "1.2.1" not in again.stdout.split("nothing to do", 1)[0].split("already on the target", 1)[1]
    assert project.compose_file.read_text() == project.original.replace(world.image("1.2.3"), world.image("1.2.2"))


def test_a_compose_file_that_cannot_be_edited_is_refused_and_leaves_nothing_behind(project: Project, tmp_path: Path) -> None:
    platform = project.platform()
    plan = platform.plan_rollback()
    project.compose_file.chmod(0o444)
    try:
        # Planned while it was writable, run after: refused before any backup is made.
        with pytest.raises(Forbidden, match=r"is read-only \(mode 0444\).*nothing was changed"):
            list(platform.execute(plan, timeout=30))
        done = headless(project, tmp_path, "--yes", "--timeout", "60")
    finally:
        project.compose_file.chmod(0o644)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"Cannot plan the rollback: The compose file {project.compose_file} is read-only" in done.stdout
    assert not list(project.directory.glob("*.bak*"))
    assert project.compose_file.read_text() == project.original
    [container] = project.running()
    assert container["Image"] == project.world.image("1.2.3")


def test_an_image_only_the_registry_has_is_picked_by_version_order(docker_world: DockerWorld, tmp_path: Path) -> None:
    world = docker_world
    repository = f"{world.registry}/billing-{uuid.uuid4().hex[:8]}"
    for tag in ("2.0.9", "2.0.10", "2.1.0", "2.2.0"):
        world.docker("tag", world.image("1.2.1"), f"{repository}:{tag}")
        world.docker("push", "-q", f"{repository}:{tag}")
        world.docker("image", "rm", f"{repository}:{tag}")
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text(f"services:\n  billing:\n    image: {repository}:2.1.0\n")
    platform = ComposePlatform("billing", compose_file, registry=world.registry_url, docker_host=world.docker_host,
                               seen_path=tmp_path / "state" / "compose-images.json")

    plan = platform.plan_rollback()

    assert plan.to_versions == ("2.0.10",)
    assert plan.choice == "2.0.10: the highest version below 2.1.0 among the registry's tags"
    assert "2.0.10 was never seen running here (registry): check that it works" in plan.summary
    assert [(c.version, c.sources) for c in plan.candidates] == [
        ("2.2.0", ("registry",)), ("2.0.10", ("registry",)), ("2.0.9", ("registry",))
    ]


def bcrypt_hash(password: str) -> str:
    """The bcrypt hash docker-registry's htpasswd wants, from libcrypt (Python's crypt module)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            crypt = None
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)) if crypt else None
    require(bool(hashed and hashed.startswith("$2")), "no bcrypt in libcrypt to write the registry's htpasswd")
    return hashed


@pytest.fixture
def private_registry(docker_world: DockerWorld, tmp_path: Path):
    """A second docker-registry that wants basic auth (htpasswd: deploy / s3cret),
    and a copy of the session's Docker config after `docker login` to it:
    yields (address, that config folder)."""
    world = docker_world
    root = tmp_path / "private-registry"
    root.mkdir()
    (root / "htpasswd").write_text(f"deploy:{bcrypt_hash('s3cret')}\n")
    address = f"127.0.0.1:{free_port()}"
    (root / "registry.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {address}\n"
        f"auth:\n  htpasswd:\n    realm: private\n    path: {root / 'htpasswd'}\n"
    )
    server = subprocess.Popen(["docker-registry", "serve", str(root / "registry.yml")], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: _answers(f"http://{address}/v2/"), f"docker-registry on {address}", timeout=30)
        config = tmp_path / "docker-config"
        shutil.copytree(world.docker_config, config, symlinks=True)
        subprocess.run(["docker", "login", "-u", "deploy", "--password-stdin", address], input="s3cret",
                       env={**world.env(), "DOCKER_CONFIG": str(config)}, capture_output=True, text=True,
                       check=True, timeout=60)
        yield address, config
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True  # 401: it is up and wants credentials
    except OSError:
        return False
    return True


def test_the_registrys_tags_are_read_with_the_docker_configs_credentials(
    docker_world: DockerWorld, private_registry, tmp_path: Path, monkeypatch
) -> None:
    world = docker_world
    address, config = private_registry
    login = {**world.env(), "DOCKER_CONFIG": str(config)}
    for tag in ("3.0.0", "3.1.0"):
        world.docker("tag", world.image("1.2.1"), f"{address}/pay:{tag}")
        subprocess.run(["docker", "push", "-q", f"{address}/pay:{tag}"], env=login, capture_output=True, check=True, timeout=60)
        world.docker("image", "rm", f"{address}/pay:{tag}")
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text(f"services:\n  pay:\n    image: {address}/pay:3.1.0\n")

    def platform() -> ComposePlatform:
        return ComposePlatform("pay", compose_file, registry=f"http://{address}", docker_host=world.docker_host,
                               seen_path=tmp_path / "state" / "compose-images.json")

    # Without credentials: the registry's refusal is a sentence, and the plan has no source for a target.
    anonymous = platform()
    with pytest.raises(Forbidden, match=rf"registry at http://{address} asks for credentials to list pay: `docker login`"):
        anonymous.registry_tags(f"{address}/pay")
    with pytest.raises(NotFound, match=r"no version older than 3\.1\.0"):
        anonymous.plan_rollback()

    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    with_login = platform()
    assert sorted(with_login.registry_tags(f"{address}/pay")) == ["3.0.0", "3.1.0"]
    plan = with_login.plan_rollback()
    assert plan.to_versions == ("3.0.0",)
    assert plan.choice == "3.0.0: the highest version below 3.1.0 among the registry's tags"
    assert "s3cret" not in plan.summary and "deploy:" not in plan.summary


def after_quick_rollback(project: Project) -> tuple[str, ComposePlatform]:
    """The previous container (1.2.2) created and the quick rollback run to it: its name, and the platform."""
    previous = f"{project.name}-previous"
    project.world.docker("create", "--name", previous, "--network", "host", project.world.image("1.2.2"),
                         str(project.port))
    platform = project.platform()
    quick = list(platform.execute(platform.plan_rollback(quick=True), timeout=60))
    assert quick[-1].done, [s.message for s in quick]
    return previous, platform


def test_after_a_quick_rollback_an_explicit_revision_also_takes_the_port_over(project: Project) -> None:
    world = project.world
    previous, platform = after_quick_rollback(project)

    plan = platform.plan_rollback(1)  # the runbook's `--to-revision`, to 1.2.1, not the quick one's 1.2.2

    assert (plan.from_versions, plan.to_versions) == (("1.2.2",), ("1.2.1",))
    targets = [c.target for c in plan.calls]
    assert targets.index(f"docker stop {previous}") < next(i for i, t in enumerate(targets) if t.endswith("up -d order-service"))
    assert f"docker rm {previous}" in targets
    steps = list(platform.execute(plan, timeout=60))
    assert steps[-1].done and not any(s.failed for s in steps), [s.message for s in steps]
    assert "address already in use" not in "\n".join(s.message for s in steps).lower()
    [container] = project.running()
    assert container["Image"] == world.image("1.2.1") and container["Health"] == "healthy"
    assert get_health(project.health_url) == (200, {"status": "healthy", "version": "1.2.1"})
    assert world.docker("container", "inspect", previous, check=False).returncode != 0


def test_a_failed_up_in_a_hand_over_starts_the_previous_container_again(docker_world: DockerWorld,
                                                                        tmp_path: Path) -> None:
    """After a quick rollback the full one stops the previous container, then
    runs `up -d`; when that fails (here the worker order-service depends on
    cannot start: its port is taken), the previous container is started again
    and serves as before, and the sentence says what to do."""
    import socket

    project = start_project(docker_world, tmp_path, docker_world.image("1.2.3"), template=DEPENDENT_TEMPLATE)
    try:
        world = project.world
        previous, platform = after_quick_rollback(project)
        project.compose("stop", "worker")
        with socket.socket() as blocker:
            # Past the health checks' connections in TIME_WAIT; the listening blocker still refuses httpd's bind.
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("127.0.0.1", project.worker_port))
            blocker.listen()
            plan = platform.plan_rollback()
            assert f"docker stop {previous}" in [c.target for c in plan.calls]
            steps = list(platform.execute(plan, timeout=60))
        last = steps[-1]
        assert last.failed, [s.message for s in steps]
        assert f"$ docker stop {previous}" in "\n".join(s.message for s in steps)
        assert f"{previous} was started again and serves as before." in last.message
        assert "The compose file now names 1.2.2 (backup " in last.message
        assert "up -d order-service` again, or restore the backup to go back to 1.2.3" in last.message
        wait_until(lambda: get_health(project.health_url) == (200, {"status": "healthy", "version": "1.2.2"}),
                   "the previous container to serve again", timeout=30)
        state = world.docker("container", "inspect", "-f", "{{.State.Running}}", previous).stdout.strip()
        assert state == "true"
    finally:
        stop_project(project)
