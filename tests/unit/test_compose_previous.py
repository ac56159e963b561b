"""How the Compose platform finds "the previous version" without the console's
memory: the compose file's git history (read from a real `git log -p`), what
counts as rolled back from, the order of evidence, the Docker config's
registry credentials, and which component a failed command names. The
engine and registry themselves are in tests/integration/test_compose.py."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support import require

from console.model import TargetCandidate
from console.platforms.base import NotFound, Unavailable
from console.platforms.compose import (
    CommandResult,
    ComposePlatform,
    GitEntry,
    command_error,
    credential_helper,
    git_rollbacks,
    parse_git_log,
    pick_previous,
    registry_credentials,
)

REPO = "registry.example.com/order-service"
COMPOSE = """\
# the shop
services:
  order-service:
    image: {image}   # CI writes this line
  worker:
    image: {repo}:0.9.0
"""
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


def image(tag: str) -> str:
    return f"{REPO}:{tag}"


def candidate(tag: str, *sources: str, seen: bool = False, rolled_back: bool = False, created: int | None = None) -> TargetCandidate:
    return TargetCandidate(
        image=image(tag), sources=tuple(sources) or ("registry",), seen_running=seen, rolled_back_from=rolled_back,
        created=T0 + timedelta(minutes=created) if created is not None else None,
    )


def git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        cwd=directory, capture_output=True, text=True, check=True, timeout=30,
    ).stdout


@pytest.fixture
def repository(tmp_path: Path):
    """A git repository whose compose file went 1.2.1 → 1.2.2 → (comment only) → 1.2.1 (a revert) → 1.2.3."""
    require(shutil.which("git") is not None, "git is not installed (Debian package git)")
    directory = tmp_path / "stack"
    directory.mkdir()
    compose = directory / "docker-compose.yml"
    git(directory, "init", "-q")
    current, comment = "", ""
    for tag, message in (("1.2.1", "deploy 1.2.1"), ("1.2.2", "deploy 1.2.2"), (None, "comment"),
                         ("1.2.1", "revert to 1.2.1"), ("1.2.3", "deploy 1.2.3")):
        current, comment = (tag, comment) if tag else (current, "# a comment\n")
        compose.write_text(COMPOSE.format(image=image(current), repo=REPO) + comment)
        git(directory, "add", "docker-compose.yml")
        git(directory, "commit", "-q", "-m", message)
    return compose


def test_the_git_history_gives_the_services_image_at_each_commit_newest_first(repository: Path) -> None:
    entries = ComposePlatform("order-service", repository, command_timeout=30).git_history()
    assert [e.image for e in entries] == [image("1.2.3"), image("1.2.1"), image("1.2.2"), image("1.2.2"), image("1.2.1")]
    assert all(len(e.commit) == 12 and e.at is not None for e in entries)
    # The neighbour's line (same repository, another tag) never counts as the service's image.
    assert image("0.9.0") not in {e.image for e in entries}
    # The revert commit says 1.2.2 was rolled back from.
    rolled = git_rollbacks(entries)
    assert list(rolled) == [image("1.2.2")]
    assert rolled[image("1.2.2")] == f"git commit {entries[1].commit} moved the image from 1.2.2 back to 1.2.1"


def test_the_git_history_is_read_again_when_head_moves(repository: Path) -> None:
    platform = ComposePlatform("order-service", repository, command_timeout=30)
    assert platform.git_history()[0].image == image("1.2.3")
    repository.write_text(COMPOSE.format(image=image("1.2.4"), repo=REPO))
    assert platform.git_history()[0].image == image("1.2.3")  # not committed: not history
    git(repository.parent, "commit", "-q", "-am", "deploy 1.2.4")
    assert [e.image for e in platform.git_history()[:2]] == [image("1.2.4"), image("1.2.3")]


def test_outside_git_there_is_no_git_history(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(COMPOSE.format(image=image("1.2.3"), repo=REPO))
    assert ComposePlatform("order-service", compose, command_timeout=30).git_history() == []


def test_a_commit_the_console_cannot_read_is_left_out() -> None:
    output = (
        "\x00commit aaaaaaaaaaaaaaaa 2026-12-01T10:00:00+00:00\n\ndiff --git a/f b/f\n@@ -1,3 +1,3 @@\n"
        " services:\n   order-service:\n-    image: r/o:1\n+    image: ${TAG}\n"
        "\x00commit bbbbbbbbbbbbbbbb 2026-11-30T10:00:00+00:00\n\ndiff --git a/f b/f\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/f\n@@ -0,0 +1,3 @@\n+services:\n+  order-service:\n+    image: r/o:1\n"
        "\\ No newline at end of file\n"
    )
    assert parse_git_log(output, "order-service", "f") == [
        GitEntry(commit="bbbbbbbbbbbb", at=datetime(2026, 11, 30, 10, tzinfo=timezone.utc), image="r/o:1")
    ]


def test_git_order_comes_first_and_skips_what_was_rolled_back_from() -> None:
    git_order = [GitEntry("c3", T0, image("1.2.3")), GitEntry("c2", T0, image("1.2.2")), GitEntry("c1", T0, image("1.2.1"))]
    # The engine and the registry would say 1.2.2; the file's history says what ran before 1.2.3.
    candidates = [candidate("1.2.2", "engine", rolled_back=True, created=5), candidate("1.2.1", "engine", "git history", created=1)]
    picked, why = pick_previous(candidates, image("1.2.3"), git_order, T0 + timedelta(minutes=9))
    assert picked is candidates[1]
    assert why == "the compose file named it before 1.2.3 (git commit c1, 2026-12-01 10:00 UTC)"


def test_git_order_says_nothing_when_no_commit_brought_the_current_version() -> None:
    # CI edits the file in place: the only commit, long ago, named 1.0.0.
    git_order = [GitEntry("c1", T0 - timedelta(days=400), image("1.0.0"))]
    candidates = [candidate("1.2.2", "engine", created=5), candidate("1.0.0", "git history", "registry")]
    picked, why = pick_previous(candidates, image("1.2.3"), git_order, T0 + timedelta(minutes=9))
    assert picked.version == "1.2.2" and why.startswith("the newest image on the engine created before 1.2.3")


def test_without_git_the_consoles_record_then_creation_time_then_registry_order() -> None:
    now = T0 + timedelta(minutes=9)
    seen = [candidate("1.2.1", "seen running", seen=True, created=1), candidate("1.2.2", "engine", created=2)]
    assert pick_previous(seen, image("1.2.3"), [], now)[0].version == "1.2.1"
    # Creation time, not version: 1.2.10 was built after 1.2.9 but before 1.2.11.
    engine = [candidate("1.2.9", "engine", created=1), candidate("1.2.10", "engine", created=2), candidate("1.3.0", "engine", created=20)]
    picked, why = pick_previous(engine, image("1.2.11"), [], now)
    assert picked.version == "1.2.10" and why == "the newest image on the engine created before 1.2.11 (2026-12-01 10:02:00 UTC)"
    # A local build the registry does not have would fail the pull: the newest pullable one.
    local = [candidate("1.2.10", "engine", created=2), candidate("1.2.9", "engine", "registry", created=1)]
    assert pick_previous(local, image("1.2.11"), [], now)[0].version == "1.2.9"
    # The current image is not on the engine: the registry's versions below it.
    registry = [candidate("2.0.0"), candidate("1.10.0"), candidate("1.9.0"), candidate("latest")]
    picked, why = pick_previous(registry, image("1.11.0"), [], None)
    assert picked.version == "1.10.0" and why == "the highest version below 1.11.0 among the registry's tags"


def test_a_version_rolled_back_from_is_never_picked() -> None:
    only = [candidate("1.2.2", "registry", rolled_back=True), candidate("1.2.1", "registry")]
    assert pick_previous(only, image("1.2.3"), [], None)[0].version == "1.2.1"
    picked, why = pick_previous(only[:1], image("1.2.3"), [], None)
    assert picked is None and "that was not rolled back from (1.2.2 was)" in why


def test_registry_credentials_come_from_the_docker_config(tmp_path: Path) -> None:
    auth = base64.b64encode(b"deploy:s3cret:with-colon").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:x").decode()},
        "127.0.0.1:5000": {"auth": auth},
    }}))
    assert registry_credentials("http://127.0.0.1:5000", tmp_path) == ("deploy", "s3cret:with-colon")
    assert registry_credentials("http://127.0.0.1:5001", tmp_path) is None
    assert registry_credentials("http://127.0.0.1:5000", tmp_path / "nowhere") is None
    assert credential_helper("http://127.0.0.1:5000", tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "pass", "credHelpers": {"127.0.0.1:5000": "ecr-login"}}))
    assert registry_credentials("http://127.0.0.1:5000", tmp_path) is None
    assert credential_helper("http://127.0.0.1:5000", tmp_path) == "ecr-login"
    assert credential_helper("https://registry.example.com", tmp_path) == "pass"


def result(stderr: str) -> CommandResult:
    return CommandResult(("docker", "compose", "pull", "order-service"), 18, "", stderr, 0.1)


def test_a_failed_command_names_the_component_that_failed() -> None:
    registry = command_error(result(
        ' order-service Error \nError response from daemon: Get "http://127.0.0.1:5999/v2/": '
        "dial tcp 127.0.0.1:5999: connect: connection refused\n"))
    assert isinstance(registry, Unavailable)
    assert "The registry 127.0.0.1:5999 is not reachable: the Docker engine answered" in str(registry)
    assert "Docker engine is not reachable" not in str(registry)
    engine = command_error(result("Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?"))
    assert "The Docker engine is not reachable" in str(engine) and "running?." not in str(engine)
    tag = command_error(result("Error response from daemon: manifest for r/o:9 not found: manifest unknown: manifest unknown"))
    assert isinstance(tag, NotFound) and "not in the registry (manifest unknown)" in str(tag)
