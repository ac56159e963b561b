"""Shared pieces of the benchmark suite: generated drill scenarios with N
services, drill worlds served in this process (with a timestamped request
log) or in a `--serve-only` subprocess, and small statistics helpers (the
frame probe for the Textual app is bench/frame_probe.py).

Nothing here asserts a time: the suite measures and reports.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BAD_SERVICE = "svc-000"
"""The service every generated scenario gives a bad deploy (the others are healthy)."""
GOOD, BAD = "1.4.1", "1.4.2"


def namespace_of(service: str) -> str:
    """The namespace a generated service lives in."""
    return f"ns-{service}"


def console_command() -> list[str]:
    """How to run the `rollback-console` command cold (its console script when
    installed in this interpreter's environment)."""
    script = Path(PYTHON).with_name("rollback-console")
    return [str(script)] if script.exists() else [PYTHON, "-m", "console"]


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: the repo importable, XDG dirs in a
    temp dir (benchmarks never touch the operator's incident store)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    scratch = Path(tempfile.gettempdir()) / "rollback-console-bench-xdg"
    for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        env[name] = str(scratch / name.lower())
    env.update(extra)
    return env


# -- scenarios ---------------------------------------------------------------


def scenario_data(
    services: int,
    *,
    bad_live: bool = True,
    deploy_bad_at: float | None = None,
    replicas: int = 3,
    ready_seconds: float = 1.0,
    start: str | None = "2024-01-17T14:43:00Z",
) -> dict[str, Any]:
    """A drill scenario with `services` deployments in namespace `shop`.

    svc-000 is the service that goes bad: with `bad_live` its bad version
    went out two minutes before t=0 (ROLLBACK NOW at once); with
    `deploy_bad_at` it is healthy at t=0 and the timeline deploys the bad
    version then. Every other service is healthy on its second revision."""
    out = []
    for i in range(services):
        name = f"svc-{i:03d}"
        history = [
            {"version": "1.4.0", "age": "14d"},
            {"version": GOOD, "age": "6d"},
        ]
        versions: dict[str, Any] = {GOOD: {"error_rate": 0.001, "latency_p95_ms": 250}}
        if name == BAD_SERVICE:
            versions[BAD] = {"error_rate": 0.08, "latency_p95_ms": 2000}
            if bad_live and deploy_bad_at is None:
                history.append({"version": BAD, "age": "2m"})
        out.append({
            "name": name,
            # One namespace each: the drill's object store copies a whole
            # namespace per list, so a shared one makes the world O(N^2).
            "namespace": namespace_of(name),
            "replicas": replicas if name == BAD_SERVICE else 1,
            "image": f"registry.example.com/{name}",
            # The healthy ones never roll out while measured: ready at once
            # keeps the world's start-up (which replays every past rollout) short.
            "ready_seconds": ready_seconds if name == BAD_SERVICE else 0,
            "request_rate": 40,
            "routes": {"/orders": 0.7, "/orders/{id}": 0.3},
            "history": history,
            "versions": versions,
        })
    data: dict[str, Any] = {
        "name": f"bench-{services}",
        "description": f"{services} services; {BAD_SERVICE} goes bad.",
        "seed": 7,
        "services": out,
        "expect": {"action": "rollback_now", "by": "5m"},
    }
    if start:
        data["start"] = start
    if deploy_bad_at is not None:
        data["timeline"] = [{"at": deploy_bad_at, "deploy": {"service": BAD_SERVICE, "version": BAD}}]
    return data


def write_scenario(directory: Path, data: dict[str, Any]) -> Path:
    """Write the scenario as YAML; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def parse(data: dict[str, Any]):
    from console.drill.scenario import parse_scenario

    return parse_scenario(data)


# -- a drill served in this process, with request times ------------------------


def timed_server_class():
    """A DrillServer whose request log also keeps the monotonic time of each
    entry (`times`, parallel to `requests`; the tuple shape stays as it is)."""
    from console.drill.server import DrillServer

    class TimedDrillServer(DrillServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.times: list[float] = []

        def _log(self, method: str, path: str, status: int) -> None:
            with self._lock:
                self.requests.append((method, path, status))
                self.times.append(time.monotonic())

        def clear_requests(self) -> None:
            with self._lock:
                self.requests.clear()
                self.times.clear()

        def timed(self) -> list[tuple[float, str, str, int]]:
            with self._lock:
                return [(t, *r) for t, r in zip(self.times, self.requests)]

    return TimedDrillServer


@dataclass
class LocalDrill:
    """A drill world and its server in this process, with console files in `directory`."""

    world: Any
    server: Any
    directory: Path
    config_path: Path
    kubeconfig: Path

    def stop(self) -> None:
        self.server.stop()


def local_drill(data: dict[str, Any], directory: Path, speed: float = 1.0,
                start: datetime | None = None, refresh_interval: float | None = None) -> LocalDrill:
    """Serve `data` in this process (timestamped request log) and write its console files."""
    from console.drill import runner
    from console.drill.world import World

    scenario = parse(data)
    world = World.from_scenario(scenario, speed=speed, start=start)
    server = timed_server_class()(world).start()
    kubeconfig, config_path = runner.write_configs(scenario, server.url, directory)
    if refresh_interval is not None:
        set_refresh_interval(config_path, refresh_interval)
    return LocalDrill(world, server, directory, config_path, kubeconfig)


def set_refresh_interval(config_path: Path, seconds: float | None, **changes: Any) -> None:
    """Rewrite a drill config's refresh interval (None: drop it, the config default applies)."""
    config = yaml.safe_load(config_path.read_text())
    if seconds is None:
        config.pop("refresh_interval", None)
    else:
        config["refresh_interval"] = seconds
    config.update(changes)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


# -- a drill served by `rollback-console drill --serve-only` ---------------------


@dataclass
class ServedDrill:
    """A `--serve-only` drill in its own process (so its CPU time is not the console's)."""

    process: subprocess.Popen
    directory: Path
    url: str
    config_path: Path
    kubeconfig: Path
    prometheus_url: str | None = None
    lines: list[str] = field(default_factory=list)

    def requests(self) -> list[tuple[str, str, int]]:
        """The server's request log so far (GET /drill/requests, which is not logged before it answers)."""
        with urllib.request.urlopen(f"{self.url}/drill/requests", timeout=10) as response:
            return [tuple(r) for r in json.load(response)["requests"]]

    def clock_reading(self) -> str:
        """The world's clock now, as `app_probe.py --drill-clock` takes it: its
        time and this machine's monotonic time of the reading, `ISO@SECONDS`."""
        with urllib.request.urlopen(f"{self.url}/drill/state", timeout=10) as response:
            now = json.load(response)["now"]
        return f"{now}@{time.monotonic()!r}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def served_drill(scenario_path: Path, directory: Path, speed: float = 1.0, with_prometheus: bool = False,
                 timeout: float = 120.0) -> ServedDrill:
    """Start `rollback-console drill --scenario-file F --serve-only --write-config DIR`, wait for `ready`."""
    cmd = [PYTHON, "-m", "console", "drill", "--scenario-file", str(scenario_path), "--serve-only",
           "--write-config", str(directory), "--speed", str(speed)]
    if with_prometheus:
        cmd.append("--with-prometheus")
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=bench_env(), cwd=ROOT)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    url = prom = None
    while True:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the drill exited before it was ready:\n" + "".join(lines))
        lines.append(line)
        if " serving at " in line:
            url = line.rsplit(" ", 1)[1].strip()
        if line.startswith("prometheus: "):
            prom = line.split()[1]
        if line.strip() == "ready":
            break
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the drill was not ready in time:\n" + "".join(lines))
    assert url
    return ServedDrill(process, directory, url, directory / "config.yaml", directory / "kubeconfig", prom, lines)


# -- numbers ---------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank) of `values`."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def machine() -> dict[str, Any]:
    """The machine the numbers came from."""
    import platform

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    kubectl = None
    try:
        kubectl = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True, timeout=10).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kubectl": kubectl,
    }


# -- memory: resident pages, each counted once --------------------------------------


def resident_frames(pid: int) -> set[int] | None:
    """The physical page frames `pid` has resident now (from /proc/PID/pagemap),
    or None when they cannot be read (no such process, or not allowed: the
    kernel shows frame numbers to CAP_SYS_ADMIN only, zeros to others)."""
    import array

    page = os.sysconf("SC_PAGE_SIZE")
    mask = (1 << 55) - 1
    frames: set[int] = set()
    try:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
            for line in maps:
                if line.rstrip().endswith("[vsyscall]"):
                    continue
                low, high = (int(x, 16) for x in line.split(None, 1)[0].split("-"))
                pagemap.seek(low // page * 8)
                entries = array.array("Q")
                entries.frombytes(pagemap.read((high - low) // page * 8))
                frames.update(entry & mask for entry in entries if entry >> 63)
    except (OSError, ValueError):
        return None
    if frames == {0}:  # present pages without their frame numbers: not allowed to see them
        return None
    return frames


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class DistinctResidentSampler:
    """The peak of the console's resident memory with every page counted once:
    its process and its refresh process (forked from it, so the interpreter,
    the modules and the config it inherited, and the libraries both map, are
    the same physical pages). Read from outside the console, every `interval`
    seconds, so the measuring adds nothing to what is measured."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self.unreadable = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._run, args=(pid,), daemon=True)
        self._thread.start()

    def _run(self, pid: int) -> None:
        page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
        while not self._stop.wait(self.interval):
            union: set[int] = set()
            for each in (pid, *children_of(pid)):
                frames = resident_frames(each)
                if frames is None:
                    if each == pid and not Path(f"/proc/{pid}").exists():
                        return
                    self.unreadable = self.unreadable or Path(f"/proc/{each}").exists()
                    continue
                union |= frames
            self.samples += 1
            self.peak_kib = max(self.peak_kib, len(union) * page_kib)

    @property
    def peak_mb(self) -> float | None:
        """The peak in MB; None when nothing was read (no sample, or frames hidden)."""
        return self.peak_kib / 1024 if self.samples and not self.unreadable else None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
