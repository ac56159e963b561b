"""The benchmark suite behind `bench/run`: start-up, detection, rollback
beside kubectl, refresh at scale with key-to-render during it, and memory.

Every measure runs against a drill world (console/drill) over HTTP, and a
real Prometheus where the machine has one. Results are printed as a table
against the floors of issue 9 and written to bench/results.json. Nothing
here fails on a time: a missed floor is reported, never raised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    BAD_SERVICE, PYTHON, ROOT, DistinctResidentSampler, bench_env, console_command, local_drill, machine, median,
    namespace_of, percentile, scenario_data, served_drill, set_refresh_interval, utc_now, write_scenario,
)
from bench.frame_probe import FrameProbe

RESULTS = ROOT / "bench" / "results.json"

FLOORS = {
    "first_frame_s": 1.0,
    "first_data_s": 2.0,
    "detection_margin_s": 0.5,
    "rollback_ratio": 1.5,
    "confirm_to_patch_ms": 50.0,
    "refresh_500_s": 1.0,
    "key_p95_ms": 50.0,
    "peak_rss_mb": 150.0,
}

FLOORS_17 = {
    "key_idle_ratio": 2.0,
    "key_cycle_ratio": 3.0,
    "first_frame_ratio": 1.5,
    "first_data_ratio": 1.5,
    "idle_cpu_percent": 5.0,
    "peak_rss_mb": 120.0,
}
"""Issue 17's floors: ratios against the bare-Textual peer measured in the same run."""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _probe(mode: str, config: Path | None, store: Path | None, *extra: str, timeout: float = 600,
           sampler: DistinctResidentSampler | None = None) -> dict:
    """Run bench/app_probe.py in a child process; its result with times relative to the spawn.
    Without a config, the bare-Textual peer runs under the same probe. A `sampler`
    watches the probe's memory from here while it runs."""
    spawned = time.monotonic()
    where = ["--config", str(config), "--store", str(store)] if config is not None else ["--peer"]
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "app_probe.py"), mode, *where, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=bench_env(), cwd=ROOT,
    )
    if sampler is not None:
        sampler.start(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    finally:
        if sampler is not None:
            sampler.stop()
    lines = [line for line in stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"app probe {mode} failed (exit {process.returncode}):\n{stderr[-4000:]}")
    data = json.loads(lines[-1].split(" ", 1)[1])
    for key in [k for k in data if k.startswith("t_")]:
        data[key] = data[key] - spawned
    return data


# -- 1. start-up ------------------------------------------------------------------


def importtime_offenders(top: int = 12) -> list[dict]:
    """`python -X importtime -c "import console.cli"` and of the TUI's modules: the biggest self times."""
    out = []
    for what in ("console.cli", "console.cli, console.session, console.ui.app, console.platforms.kubernetes, kubernetes.client"):
        result = subprocess.run([PYTHON, "-X", "importtime", "-c", f"import {what}"], capture_output=True,
                                text=True, env=bench_env(), cwd=ROOT, timeout=120)
        rows = []
        for line in result.stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if match:
                rows.append({"module": match.group(4), "self_ms": int(match.group(1)) / 1000,
                             "cumulative_ms": int(match.group(2)) / 1000, "depth": len(match.group(3)) // 2})
        top_level = sum(r["cumulative_ms"] for r in rows if r["depth"] == 0)
        out.append({
            "import": what,
            "total_ms": round(top_level, 1),
            "top_self": sorted(rows, key=lambda r: -r["self_ms"])[:top],
            "top_cumulative": [r for r in sorted(rows, key=lambda r: -r["cumulative_ms"]) if r["depth"] <= 1][:top],
        })
    return out


def startup(sizes: list[int], runs: int, work: Path) -> dict:
    """Spawn-to-first-frame and spawn-to-first-data of the console (a cold
    process, as `watch --config` starts) on a served drill of N services."""
    results = {}
    for n in sizes:
        log(f"start-up: {n} services")
        scenario = write_scenario(work / f"startup-{n}", scenario_data(n))
        drill = served_drill(scenario, work / f"startup-{n}" / "drill")
        try:
            samples = []
            # At 20 services (issue 17) the same process goes on for 3 more cycles: its steady cycle.
            steady = ["--steady-cycles", "3"] if n == 20 else []
            # Issue 17's start-up pairs: two more than the other sizes' runs (start-up times
            # on this shared machine move by a third between runs).
            for i in range(runs + 2 if n == 20 and runs > 1 else runs):
                data = _probe("startup", drill.config_path, work / f"startup-{n}" / f"store-{i}.db", *steady)
                cycles = [c["seconds"] for c in data["cycles"]]
                samples.append({
                    "cli_imported_s": data["t_cli_imported"],
                    "app_built_s": data["t_app_built"],
                    "first_frame_s": data["t_first_frame"],
                    "first_data_s": data["t_first_data"],
                    "first_cycle_s": cycles[0] if cycles else None,
                    "steady_cycle_s": median(cycles[1:]) if len(cycles) > 1 else None,
                })
                if n == 20:
                    # The peer's cold start right beside the console's, at the same moment's load.
                    peer = _probe("startup", None, None)
                    samples[-1]["peer_first_frame_s"] = peer["t_first_frame"]
                    # And the console with its refresh cycle in the UI's process (as before issue 17).
                    same = _probe("startup", drill.config_path, work / f"startup-{n}" / f"store-in-{i}.db", *steady, "--in-process")
                    same_cycles = [c["seconds"] for c in same["cycles"]]
                    samples[-1].update(in_process_first_frame_s=same["t_first_frame"], in_process_first_data_s=same["t_first_data"],
                                       in_process_steady_cycle_s=median(same_cycles[1:]) if len(same_cycles) > 1 else None)
        finally:
            drill.stop()
        paired = [s["first_frame_s"] / s["peer_first_frame_s"] for s in samples if s.get("peer_first_frame_s")]
        results[str(n)] = {
            "runs": samples,
            # Each console start-up ÷ the peer's right after it: the machine's load at that moment cancels out.
            "median_paired_first_frame_ratio": median(paired) if paired else None,
            **{f"median_{k}": median([s[k] for s in samples if s.get(k) is not None])
               for k in ("cli_imported_s", "app_built_s", "first_frame_s", "first_data_s", "first_cycle_s",
                         "steady_cycle_s", "peer_first_frame_s", "in_process_first_frame_s", "in_process_first_data_s",
                         "in_process_steady_cycle_s")},
        }
    return results


# -- 2. detection -------------------------------------------------------------------


async def _detect_once(interval: float | None, work: Path, speed: float, deploy_at: float, rng: random.Random) -> dict:
    from console.cli import _load, _session
    from console.model import Action
    from console.ui.app import build_app

    work.mkdir(parents=True, exist_ok=True)
    drill = local_drill(scenario_data(1, bad_live=False, deploy_bad_at=deploy_at, replicas=1, ready_seconds=1),
                        work, speed=speed)
    set_refresh_interval(drill.config_path, interval)
    try:
        config = _load(drill.config_path)
        session = _session(config, clock=drill.world.clock, store_path=work / "incidents.db")
        app = build_app(session, animate=False)
        seen: dict[str, float] = {}

        def on_frame(now: float) -> None:
            view = app.views.get(BAD_SERVICE)
            if "detected" not in seen and view is not None and view.decision.action == Action.ROLLBACK_NOW:
                seen["detected"] = now

        FrameProbe(app, on_frame)
        # The console starts at a random phase of the world, so the crossing
        # falls anywhere in its refresh interval.
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        async with app.run_test(headless=True, size=(140, 45)) as pilot:
            deadline = time.monotonic() + 60
            while "detected" not in seen and time.monotonic() < deadline:
                await pilot.pause(0.01)
            app.exit()
        world, clock = drill.world, drill.world.clock
        crossing = next((s.at for s in world.samples(BAD_SERVICE)
                         if s.at >= world.start + timedelta(seconds=deploy_at) and s.error_rate > 0.05), None)
        if crossing is None or "detected" not in seen:
            return {"seconds": None, "error": "no crossing or no ROLLBACK NOW within 60 s"}
        # The wall (monotonic) moment the world's clock reached the crossing sample.
        sim = (crossing - clock._start).total_seconds() - clock._offset
        crossed_at = clock._origin + sim / clock.speed
        return {"seconds": seen["detected"] - crossed_at, "interval": session.refresh_interval}
    finally:
        drill.stop()


def detection(intervals: list[float | None], trials: int, work: Path) -> dict:
    """World error rate crossing 5 % -> first frame showing ROLLBACK NOW."""
    rng = random.Random(5)
    out = {}
    for interval in intervals:
        label = "default" if interval is None else f"{interval:g}"
        log(f"detection: refresh interval {label}")
        runs = [asyncio.run(_detect_once(interval, work / f"detect-{label}-{i}", speed=10.0, deploy_at=40.0, rng=rng))
                for i in range(trials)]
        seconds = [r["seconds"] for r in runs if r["seconds"] is not None]
        effective = next((r["interval"] for r in runs if "interval" in r), interval)
        out[label] = {"refresh_interval_s": effective, "runs": runs, "median_s": median(seconds),
                      "max_s": max(seconds) if seconds else None}
    return out


# -- 3. rollback beside kubectl ------------------------------------------------------


def _categorise(requests: list[tuple]) -> dict[str, int]:
    counts = {"kubernetes": 0, "prometheus": 0, "health": 0, "other": 0}
    for method, path, *_ in requests:
        if path.startswith("/prometheus"):
            counts["prometheus"] += 1
        elif path.startswith("/health/"):
            counts["health"] += 1
        elif path.startswith("/api") or path.startswith("/version") or path.startswith("/openapi"):
            counts["kubernetes"] += 1
        else:
            counts["other"] += 1
    counts["total"] = len(requests)
    return counts


def _fast_rollback_world(work: Path, replicas: int = 3):
    return local_drill(scenario_data(1, replicas=replicas, ready_seconds=1), work, speed=1.0,
                       start=utc_now().replace(microsecond=0))


def rollback_cli(runs: int, work: Path, replicas: int = 3) -> dict:
    """`rollback-console rollback --yes` (cold) against `kubectl rollout undo` +
    `kubectl rollout status`, each on its own identical fresh world."""
    kubectl = shutil.which("kubectl")
    namespace = namespace_of(BAD_SERVICE)
    samples = []
    for i in range(runs):
        log(f"rollback: run {i + 1} of {runs}")
        run_dir = work / f"rollback-{i}"
        sample: dict[str, Any] = {}
        if kubectl:
            drill = _fast_rollback_world(run_dir / "kubectl", replicas)
            cache = run_dir / "kubectl-cache"
            base = [kubectl, "--kubeconfig", str(drill.kubeconfig), "--cache-dir", str(cache), "-n", namespace,
                    "--request-timeout=30s"]
            try:
                # An operator's kubectl has its discovery cache warm: warm it, then count from zero.
                subprocess.run([*base, "get", "deployment", BAD_SERVICE], capture_output=True, timeout=60, check=True)
                drill.server.clear_requests()
                began = time.monotonic()
                undo = subprocess.run([*base, "rollout", "undo", f"deployment/{BAD_SERVICE}"], capture_output=True, text=True, timeout=120)
                status = subprocess.run([*base, "rollout", "status", f"deployment/{BAD_SERVICE}", "--timeout=120s"],
                                        capture_output=True, text=True, timeout=180)
                sample["kubectl_s"] = time.monotonic() - began
                sample["kubectl_ok"] = undo.returncode == 0 and status.returncode == 0
                sample["kubectl_requests"] = _categorise(drill.server.requests)
            finally:
                drill.stop()
        drill = _fast_rollback_world(run_dir / "console", replicas)
        try:
            env = bench_env(XDG_STATE_HOME=str(run_dir / "state"))
            drill.server.clear_requests()
            began = time.monotonic()
            result = subprocess.run([*console_command(), "rollback", BAD_SERVICE, "--config", str(drill.config_path),
                                     "--reason", "bench: error rate above 5 %", "--yes"],
                                    capture_output=True, text=True, env=env, timeout=300)
            sample["console_s"] = time.monotonic() - began
            sample["console_ok"] = result.returncode == 0
            sample["console_exit"] = result.returncode
            if result.returncode != 0:
                sample["console_output"] = (result.stdout + result.stderr)[-2000:]
            sample["console_requests"] = _categorise(drill.server.requests)
            sample["console_request_log"] = [f"{m} {p} {s}" for m, p, s in drill.server.requests]
            patch = next((t for t, m, p, s in drill.server.timed() if m == "PATCH" and "/deployments/" in p), None)
            sample["console_spawn_to_patch_s"] = patch - began if patch else None
        finally:
            drill.stop()
        samples.append(sample)
    out: dict[str, Any] = {"runs": samples, "replicas": replicas}
    out["median_console_s"] = median([s["console_s"] for s in samples])
    out["median_spawn_to_patch_s"] = median([s["console_spawn_to_patch_s"] for s in samples if s.get("console_spawn_to_patch_s")])
    if kubectl:
        out["median_kubectl_s"] = median([s["kubectl_s"] for s in samples])
        out["ratio"] = out["median_console_s"] / out["median_kubectl_s"]
    else:
        out["kubectl_missing"] = "kubectl is not installed (Debian package kubernetes-client): no side-by-side figure"
    out["console_requests"] = samples[-1]["console_requests"]
    out["kubectl_requests"] = samples[-1].get("kubectl_requests")
    return out


async def _confirm_once(work: Path) -> dict:
    from console.cli import _load, _session
    from console.model import Action
    from console.ui.app import build_app
    from console.ui.screens.confirm import ConfirmRollbackScreen

    work.mkdir(parents=True, exist_ok=True)
    drill = _fast_rollback_world(work)
    try:
        config = _load(drill.config_path)
        session = _session(config, clock=drill.world.clock, store_path=work / "incidents.db")
        app = build_app(session, animate=False)
        async with app.run_test(headless=True, size=(140, 45)) as pilot:
            deadline = time.monotonic() + 30
            while not (app.views.get(BAD_SERVICE) and app.views[BAD_SERVICE].decision.action == Action.ROLLBACK_NOW):
                if time.monotonic() > deadline:
                    return {"ms": None, "error": "no ROLLBACK NOW"}
                await pilot.pause(0.02)
            await pilot.press("r")
            while not isinstance(app.screen, ConfirmRollbackScreen):
                await pilot.pause(0.01)
            await pilot.pause(0.1)  # the modal settled, as an operator reading it
            drill.server.clear_requests()
            pressed = time.monotonic()
            await pilot.press("y")
            patch = None
            while patch is None and time.monotonic() < pressed + 30:
                patch = next((t for t, m, p, s in drill.server.timed() if m == "PATCH" and "/deployments/" in p), None)
                await pilot.pause(0.005)
            before = [f"{m} {p}" for t, m, p, s in drill.server.timed() if patch is None or t <= patch]
            app.exit()
        return {"ms": (patch - pressed) * 1000 if patch else None, "requests_before_patch": before}
    finally:
        drill.stop()


def confirm_to_patch(runs: int, work: Path) -> dict:
    """In the app: the confirmation key `y` to the PATCH in the API server's request log."""
    log("confirmation to PATCH")
    samples = [asyncio.run(_confirm_once(work / f"confirm-{i}")) for i in range(runs)]
    values = [s["ms"] for s in samples if s["ms"] is not None]
    return {"runs": samples, "median_ms": median(values), "max_ms": max(values) if values else None}


# -- 4. refresh at scale, and keys during it -------------------------------------------


def _refresh_scale_module():
    """bench/refresh_scale.py (the signals helper's 500-service cycle against a real Prometheus), if present."""
    path = ROOT / "bench" / "refresh_scale.py"
    if not path.exists():
        return None
    import importlib

    return importlib.import_module("bench.refresh_scale")


async def _cycles(config_path: Path, store: Path, count: int, clock=None) -> list[float]:
    from console.cli import _load, _session

    session = _session(_load(config_path), clock=clock, store_path=store)
    times = []
    try:
        for _ in range(count):
            began = time.monotonic()
            await session.refresh()
            times.append(time.monotonic() - began)
    finally:
        await session.aclose()
    return times


def refresh_scale(sizes: list[int], cycles: int, work: Path, with_prometheus: bool, keys: int) -> dict:
    """Session.refresh() for N services (first cycle, which loads the sparkline
    history, and the steady cycles after it); for the largest size, the app's
    key-to-render latency while cycles run (in a child process)."""
    from console.drill import prometheus_runner

    prometheus = with_prometheus and prometheus_runner.find_binary() is not None
    out: dict[str, Any] = {"source": "real Prometheus scraping the drill" if prometheus else
                           "the drill's own Prometheus query API (no `prometheus` binary, or --quick)"}
    for n in sizes:
        log(f"refresh: {n} services ({'Prometheus' if prometheus else 'drill query API'})")
        directory = work / f"refresh-{n}"
        scenario = write_scenario(directory, scenario_data(n))
        started = time.monotonic()
        drill = served_drill(scenario, directory / "drill", with_prometheus=prometheus, timeout=600)
        entry: dict[str, Any] = {"drill_start_s": time.monotonic() - started}
        try:
            if prometheus:
                _wait_for_prometheus(drill.prometheus_url, n)
            times = asyncio.run(_cycles(drill.config_path, directory / "incidents.db", cycles))
            entry.update(first_cycle_s=times[0], cycles_s=times[1:], median_cycle_s=median(times[1:]),
                         max_cycle_s=max(times[1:]) if len(times) > 1 else None)
            if n == max(sizes) and keys:
                log(f"keys: {keys} arrow keys while {n}-service cycles run")
                set_refresh_interval(drill.config_path, 0.2)
                data = _probe("keys", drill.config_path, directory / "keys.db", "--keys", str(keys), "--timeout", "300")
                during = [x["ms"] for x in data["latencies"] if x.get("kind") == "cycle" and x["ms"] is not None]
                idle = [x["ms"] for x in data["latencies"] if x.get("kind") == "idle" and x["ms"] is not None]
                arriving = [x["ms"] for x in data["latencies"] if x.get("kind") == "apply" and x["ms"] is not None]
                app_cycles = [c["seconds"] for c in data["cycles"]]
                entry["keys"] = {
                    "during_cycle_ms": during, "idle_ms": idle,
                    "p50_ms": percentile(during, 50), "p95_ms": percentile(during, 95), "max_ms": max(during) if during else None,
                    "idle_p95_ms": percentile(idle, 95), "lost": sum(1 for x in data["latencies"] if x["ms"] is None),
                    "as_views_arrive_ms": arriving, "as_views_arrive_p95_ms": percentile(arriving, 95),
                    "app_cycles_median_s": median(app_cycles[1:]), "app_first_cycle_s": app_cycles[0] if app_cycles else None,
                }
                log(f"keys: {keys} arrow keys in the bare-Textual peer")
                peer = _probe("keys", None, None, "--keys", str(keys), "--timeout", "300")
                peer_ms = [x["ms"] for x in peer["latencies"] if x["ms"] is not None]
                entry["keys"]["peer_ms"] = peer_ms
                entry["keys"]["peer_p95_ms"] = percentile(peer_ms, 95)
                log(f"keys: {keys} arrow keys, the refresh cycle in the UI's process (as before issue 17)")
                same = _probe("keys", drill.config_path, directory / "keys-in.db", "--keys", str(keys), "--timeout", "300",
                              "--in-process")
                entry["keys"]["in_process_p95_ms"] = percentile(
                    [x["ms"] for x in same["latencies"] if x.get("kind") == "cycle" and x["ms"] is not None], 95)
                entry["keys"]["in_process_idle_p95_ms"] = percentile(
                    [x["ms"] for x in same["latencies"] if x.get("kind") == "idle" and x["ms"] is not None], 95)
        finally:
            drill.stop()
        out[str(n)] = entry
    module = _refresh_scale_module()
    if module is not None and with_prometheus:
        out["refresh_scale_py"] = _run_refresh_scale(module)
    return out


def _wait_for_prometheus(url: str | None, services: int, timeout: float = 120.0) -> None:
    """Until Prometheus has the error-rate series of every service (a few scrapes and rule evaluations)."""
    import urllib.parse
    import urllib.request

    deadline = time.monotonic() + timeout
    query = urllib.parse.urlencode({"query": "count(service:error_rate:ratio)"})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as response:
                result = json.load(response)["data"]["result"]
            if result and int(float(result[0]["value"][1])) >= services:
                time.sleep(2)
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"Prometheus did not have the series of {services} services within {timeout:.0f} s")


def _run_refresh_scale(module) -> Any:
    """Run the signals helper's measurement (`python bench/refresh_scale.py`,
    its own process and table) and return what it wrote (bench/results-refresh.json)."""
    path = ROOT / "bench" / "results-refresh.json"
    result = subprocess.run([PYTHON, str(ROOT / "bench" / "refresh_scale.py"), "--services", "500"],
                            capture_output=True, text=True, env=bench_env(), cwd=ROOT, timeout=1800)
    if result.returncode != 0 or not path.exists():
        return {"error": f"bench/refresh_scale.py exited {result.returncode}: {result.stderr[-1500:]}"}
    return json.loads(path.read_text())


# -- 5. idle CPU -----------------------------------------------------------------------------


def idle_cpu(services: int, interval: float, work: Path, window: float) -> dict:
    """CPU of the console process (all threads) at rest: N services, refresh
    every `interval` s, after the first data and a warm-up; beside it the peer's."""
    log(f"idle CPU: {services} services, refresh {interval:g} s, {window:g} s window")
    directory = work / f"idle-{services}"
    scenario = write_scenario(directory, scenario_data(services))
    drill = served_drill(scenario, directory / "drill", timeout=600)
    try:
        set_refresh_interval(drill.config_path, interval)
        data = _probe("idle", drill.config_path, directory / "incidents.db", "--window", str(window), timeout=600)
        peer = _probe("idle", None, None, "--window", str(window), timeout=600)
        same = _probe("idle", drill.config_path, directory / "incidents-in.db", "--window", str(window), "--in-process",
                      timeout=600)
    finally:
        drill.stop()
    return {"services": services, "refresh_interval_s": interval, "window_s": data["idle_window_s"],
            "cpu_s": data["idle_cpu_s"], "cpu_percent": data["idle_cpu_percent"],
            "cycles": len(data["cycles"]), "peer_cpu_percent": peer["idle_cpu_percent"],
            "in_process_cpu_percent": same["idle_cpu_percent"]}


# -- 6. memory -----------------------------------------------------------------------------


def memory(services: int, sim_seconds: float, speed: float, work: Path) -> dict:
    """Peak RSS (VmHWM) of the console process after `sim_seconds` of the
    world's simulated time, refreshing back to back."""
    log(f"memory: {services} services, {sim_seconds:g} simulated seconds at speed {speed:g}")
    directory = work / f"memory-{services}"
    scenario = write_scenario(directory, scenario_data(services))
    drill = served_drill(scenario, directory / "drill", speed=speed, timeout=600)
    try:
        set_refresh_interval(drill.config_path, 0.2)
        distinct, distinct_same = DistinctResidentSampler(), DistinctResidentSampler()
        data = _probe("memory", drill.config_path, directory / "incidents.db", "--speed", str(speed),
                      "--drill-clock", drill.clock_reading(), "--sim-seconds", str(sim_seconds), timeout=1800, sampler=distinct)
        same = _probe("memory", drill.config_path, directory / "incidents-in.db", "--speed", str(speed),
                      "--drill-clock", drill.clock_reading(), "--sim-seconds", str(sim_seconds), "--in-process", timeout=1800,
                      sampler=distinct_same)
    finally:
        drill.stop()
    return {"services": services, "sim_seconds": data.get("sim_seconds"), "cycles": len(data["cycles"]),
            "peak_rss_mb": data["vm_hwm_kib"] / 1024, "rss_at_end_mb": data["vm_rss_kib"] / 1024,
            "ui_peak_rss_mb": data["ui_vm_hwm_kib"] / 1024,
            "refresh_process_peak_rss_mb": data["child_vm_hwm_kib"] / 1024 if data.get("child_vm_hwm_kib") else None,
            "peak_pss_mb": data["peak_pss_kib"] / 1024 if data.get("peak_pss_kib") else None,
            # Every resident page of the two processes counted once, sampled each second from outside.
            "peak_distinct_mb": distinct.peak_mb,
            "distinct_samples": distinct.samples,
            "in_process_peak_rss_mb": same["vm_hwm_kib"] / 1024,
            "in_process_peak_distinct_mb": distinct_same.peak_mb}


# -- the table --------------------------------------------------------------------------------


def _fmt(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _same(value: float | None, unit: str, digits: int = 2) -> str:
    """The same measure with the refresh cycle in the UI's process (as before issue 17), run beside it."""
    return "" if value is None else f"; cycle in the UI's process: {_fmt(value, unit, digits)}"


def table_17(results: dict) -> list[tuple[str, str, str, str]]:
    """Issue 17's rows, with its names and floors, absolute figures beside them."""
    rows = []

    def row(name: str, value: float | None, floor: float, unit: str, absolute: str, digits: int = 2) -> None:
        verdict = "" if value is None else ("met" if value <= floor else "MISSED")
        rows.append((name, _fmt(value, unit, digits) + f" ({absolute})", f"≤ {_fmt(float(floor), unit, digits)}", verdict))

    sizes = [n for n in results.get("refresh", {}) if n.isdigit()]
    largest = max(sizes, key=int) if sizes else None
    keys = (results["refresh"][largest].get("keys") or {}) if largest else {}
    peer = keys.get("peer_p95_ms")
    if keys:
        row("key-to-render idle (p95) ÷ bare Textual", _ratio(keys.get("idle_p95_ms"), peer), FLOORS_17["key_idle_ratio"], "×",
            f"{_fmt(keys.get('idle_p95_ms'), ' ms', 1)} vs {_fmt(peer, ' ms', 1)}{_same(keys.get('in_process_idle_p95_ms'), ' ms', 1)}")
        row(f"key-to-render during a {largest}-service cycle (p95) ÷ bare Textual", _ratio(keys.get("p95_ms"), peer),
            FLOORS_17["key_cycle_ratio"], "×",
            f"{_fmt(keys.get('p95_ms'), ' ms', 1)} vs {_fmt(peer, ' ms', 1)}{_same(keys.get('in_process_p95_ms'), ' ms', 1)}"
            f"; a key the moment a cycle's views arrive {_fmt(keys.get('as_views_arrive_p95_ms'), ' ms', 1)}")
    start = results.get("startup", {}).get("20")
    if start:
        frame, bare = start.get("median_first_frame_s"), start.get("median_peer_first_frame_s")
        paired = start.get("median_paired_first_frame_ratio")
        row("first frame, 20 services ÷ bare Textual", paired if paired is not None else _ratio(frame, bare),
            FLOORS_17["first_frame_ratio"], "×",
            f"median of {len(start['runs'])} side-by-side pairs; medians {_fmt(frame, ' s')} vs {_fmt(bare, ' s')}, "
            f"their ratio {_fmt(_ratio(frame, bare), '×')}{_same(start.get('median_in_process_first_frame_s'), ' s')}")
        data, steady = start.get("median_first_data_s"), start.get("median_steady_cycle_s")
        gap = data - frame if data is not None and frame is not None else None
        same_frame, same_data = start.get("median_in_process_first_frame_s"), start.get("median_in_process_first_data_s")
        same_gap = same_data - same_frame if same_data is not None and same_frame is not None else None
        row("first live data − first frame, 20 services ÷ steady cycle", _ratio(gap, steady), FLOORS_17["first_data_ratio"], "×",
            f"{_fmt(gap, ' s')} vs {_fmt(steady, ' s', 3)}; first data {_fmt(data, ' s')}"
            f"{_same(_ratio(same_gap, start.get('median_in_process_steady_cycle_s')), '×', 1)}")
    idle = results.get("idle")
    if idle:
        row(f"idle CPU, {idle['services']} services", idle["cpu_percent"], FLOORS_17["idle_cpu_percent"], " %",
            f"of one core, {idle['refresh_interval_s']:g} s refresh; bare Textual {idle['peer_cpu_percent']:.1f} %"
            f"{_same(idle.get('in_process_cpu_percent'), ' %', 1)}", 1)
    mem = results.get("memory")
    if mem and mem["services"] >= 500:
        value, how = resident_peak(mem)
        child = mem.get("refresh_process_peak_rss_mb")
        split = f"; the two processes' peaks added {mem['peak_rss_mb']:.0f} (UI {mem['ui_peak_rss_mb']:.0f} + refresh process {child:.0f})" if child else ""
        if mem.get("peak_pss_mb"):
            split += f"; PSS {mem['peak_pss_mb']:.0f}"
        row(f"peak RSS, {mem['services']} services", value, FLOORS_17["peak_rss_mb"], " MB",
            f"{how}, {mem['sim_seconds']:.0f} s simulated{split}"
            f"{_same(mem.get('in_process_peak_rss_mb'), ' MB', 0)}", 0)
    return rows


def resident_peak(mem: dict) -> tuple[float, str]:
    """The console's peak resident memory and how it was counted: every page
    its two processes hold counted once (they share the pages of everything
    the refresh process inherited when it was forked, and of the libraries
    both map: RSS of each counts those in each), else the two peaks added,
    an upper bound (a machine where /proc/PID/pagemap hides frame numbers)."""
    if mem.get("peak_distinct_mb"):
        return mem["peak_distinct_mb"], "every resident page of the two processes once"
    return mem["peak_rss_mb"], "the two processes' peaks added"


def table(results: dict) -> list[tuple[str, str, str, str]]:
    """(measure, value, floor, verdict) rows: issue 17's first, then issue 9's."""
    rows = table_17(results)

    def row(name: str, value: float | None, floor: float | None, unit: str, digits: int = 2, note: str = "") -> None:
        verdict = "" if floor is None or value is None else ("met" if value <= floor else "MISSED")
        rows.append((name, _fmt(value, unit, digits) + (f" {note}" if note else ""),
                     "" if floor is None else f"≤ {_fmt(float(floor), unit, digits)}", verdict))

    for n, entry in results.get("startup", {}).items():
        floor = n == "20"
        row(f"start-up, {n} services: first frame", entry["median_first_frame_s"], FLOORS["first_frame_s"] if floor else None, " s")
        row(f"start-up, {n} services: first live data", entry["median_first_data_s"], FLOORS["first_data_s"] if floor else None, " s")
    for label, entry in results.get("detection", {}).items():
        interval = entry["refresh_interval_s"]
        row(f"detection at refresh {interval:g} s (median)", entry["median_s"], None, " s")
        row(f"detection at refresh {interval:g} s (worst of {len(entry['runs'])})", entry["max_s"],
            interval + FLOORS["detection_margin_s"], " s")
    rb = results.get("rollback")
    if rb:
        row("headless rollback (median)", rb["median_console_s"], None, " s")
        if "median_kubectl_s" in rb:
            row("kubectl rollout undo + status (median)", rb["median_kubectl_s"], None, " s")
            row("rollback ÷ kubectl wall time", rb["ratio"], FLOORS["rollback_ratio"], "×")
            kc, cc = rb["kubectl_requests"], rb["console_requests"]
            # The floor counts Kubernetes API requests: the Prometheus queries and
            # health checks are the checked rollback's point, kubectl makes none.
            rows.append(("Kubernetes API requests: console vs kubectl",
                         f"{cc['kubernetes']} vs {kc['kubernetes']} (console also: {cc['prometheus']} Prometheus, "
                         f"{cc['health']} health)",
                         f"≤ {kc['kubernetes']}", "met" if cc["kubernetes"] <= kc["kubernetes"] else "MISSED"))
    cp = results.get("confirm_to_patch")
    if cp:
        row("confirmation key → PATCH at the API (median)", cp["median_ms"], FLOORS["confirm_to_patch_ms"], " ms", 1)
    rs = results.get("refresh", {})
    for n, entry in rs.items():
        if not n.isdigit():
            continue
        row(f"refresh cycle, {n} services (median steady)", entry.get("median_cycle_s"),
            FLOORS["refresh_500_s"] if n == "500" else None, " s", 3)
        row(f"refresh cycle, {n} services (first, with history)", entry.get("first_cycle_s"), None, " s", 3)
        keys = entry.get("keys")
        if keys:
            row(f"key-to-render during a {n}-service cycle (p95)", keys["p95_ms"],
                FLOORS["key_p95_ms"], " ms", 1)
            row("key-to-render while idle (p95)", keys["idle_p95_ms"], None, " ms", 1)
    helper = rs.get("refresh_scale_py")
    if isinstance(helper, dict) and "rows" in helper:
        for r in helper["rows"]:
            floor = FLOORS["refresh_500_s"] if r["case"].startswith("full cycle") and helper.get("services") == 500 else None
            row(f"refresh_scale.py, {helper.get('services')} services: {r['case']} (median)", r["median_s"], floor, " s", 3)
    mem = results.get("memory")
    if mem:
        row(f"peak RSS, {mem['services']} services, {mem['sim_seconds']:.0f} s simulated", resident_peak(mem)[0],
            FLOORS["peak_rss_mb"] if mem["services"] >= 500 else None, " MB", 0)
    return rows


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in rows + [("measure", "value", "floor", "")]) for i in range(4)]
    header = ("measure", "value", "floor", "")
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes, one run each: a smoke test in seconds.")
    parser.add_argument("--only", help="Comma-separated measures: startup,detection,rollback,confirm,refresh,idle,memory.")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Where to write the results (JSON).")
    args = parser.parse_args(argv)
    quick = args.quick
    chosen = set((args.only or "startup,detection,rollback,confirm,refresh,idle,memory").split(","))
    work = Path(tempfile.mkdtemp(prefix="rollback-bench-"))
    results: dict[str, Any] = {"quick": quick, "machine": machine(), "started": utc_now().isoformat()}
    began = time.monotonic()
    try:
        if "startup" in chosen:
            results["startup"] = startup([1, 20] if quick else [1, 20, 200], 1 if quick else 3, work)
            if not quick:
                results["importtime"] = importtime_offenders()
        if "detection" in chosen:
            results["detection"] = detection([2.0] if quick else [None, 2.0], 1 if quick else 6, work)
        if "rollback" in chosen:
            results["rollback"] = rollback_cli(1 if quick else 5, work, replicas=1 if quick else 3)
        if "confirm" in chosen:
            results["confirm_to_patch"] = confirm_to_patch(1 if quick else 5, work)
        if "refresh" in chosen:
            results["refresh"] = refresh_scale([10] if quick else [50, 200, 500], 3 if quick else 6, work,
                                               with_prometheus=not quick, keys=6 if quick else 100)
        if "idle" in chosen:
            results["idle"] = idle_cpu(10 if quick else 40, 2.0, work, window=8.0 if quick else 20.0)
        if "memory" in chosen:
            results["memory"] = (memory(10, 30, 20.0, work) if quick else memory(500, 600, 10.0, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.monotonic() - began
    rows = table(results)
    results["table"] = [dict(zip(("measure", "value", "floor", "verdict"), r)) for r in rows]
    print_table(rows)
    if not (quick and args.output == RESULTS):
        args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nwritten: {args.output}  ({results['seconds']:.0f} s)")
    else:
        quick_out = ROOT / "bench" / "results-quick.json"
        quick_out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nquick run: {quick_out} (bench/results.json keeps the full run)  ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
