"""The console app in a child process, instrumented: what an operator's
`rollback-console watch --config PATH` does (the same imports, config
loading, Session and app), run headless at a fixed terminal size, with a
frame probe. Prints one JSON object on stdout when done.

Modes:
  startup  exit at the first frame that shows live data; report the times of
           imports, first painted frame and first data frame (monotonic
           clock, comparable with the parent's).
  memory   run refresh cycles until `--sim-seconds` of the drill's simulated
           time have passed; report peak RSS (VmHWM) and cycles: the console
           process plus its refresh process (each one's peak, added).
  keys     while refresh cycles run, send arrow keys the way a terminal
           driver does (from another thread) and time each key until the
           frame that shows its effect (the cursor on the next row). In
           turn: at a random moment during a cycle (from its start until
           the app has painted it), at a random moment between two cycles
           (idle), and, one key in five, the moment a cycle's views reach
           the UI (the worst moment: reported on its own).
  idle     after the first data and a warm-up, the console's CPU time
           (every thread, and its refresh process) over a window of wall
           time: % of one core.

`--peer` runs the bare-Textual peer (bench/bare_textual.py: one 500-row
DataTable and one Static) instead of the console, under the same probe,
terminal size and key sender (no refresh cycles: every key is idle).
`--steady-cycles N` (startup) waits for N cycles after the first before
exiting, so the steady cycle of the same process is known.

Usage: python bench/app_probe.py MODE --config PATH [--speed X --drill-clock ISO@SECONDS] ...
"""

from __future__ import annotations

T_START = __import__("time").monotonic()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if "--peer" not in sys.argv:  # the bare-Textual peer imports Textual only
    # What the console script (console/launch.py) does first.
    from console import launch  # noqa: E402

    launch.start_up()
    import console.cli as cli  # noqa: E402

T_CLI = time.monotonic()


async def _wait(seconds: float) -> None:
    """Let the app run for `seconds`. Not `pilot.pause()`: that waits for the
    screen to be idle by posting a callback to every widget on it, work the
    probe would add to the app's own at every poll (the console has hundreds
    of widgets, the bare peer three)."""
    import asyncio

    await asyncio.sleep(seconds)


def _status_kib(field: str, pid: int | str = "self") -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _child_pid(app) -> int | None:
    """The console's refresh process (console.refresher), if it runs one: its
    CPU and memory are the console's too, and are counted with it."""
    session = getattr(app, "session", None)
    poller = getattr(session, "_poller", None) if session is not None else None
    return getattr(poller, "pid", None)


def _child_cpu(pid: int | None) -> float:
    """User + system CPU seconds of process `pid` (0 without one)."""
    if pid is None:
        return 0.0
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _memory(app) -> dict:
    """Peak and current RSS of the console: its own process and its refresh process."""
    child = _child_pid(app)
    out = {"vm_hwm_kib": _status_kib("VmHWM"), "vm_rss_kib": _status_kib("VmRSS"),
           "ui_vm_hwm_kib": _status_kib("VmHWM"), "child_vm_hwm_kib": None, "child_vm_rss_kib": None}
    if child is not None:
        out["child_vm_hwm_kib"] = _status_kib("VmHWM", child)
        out["child_vm_rss_kib"] = _status_kib("VmRSS", child)
        out["vm_hwm_kib"] += out["child_vm_hwm_kib"] or 0
        out["vm_rss_kib"] += out["child_vm_rss_kib"] or 0
    return out


def _pss_kib(app) -> int:
    """The console's proportional set size now: its process and its refresh
    process, each page shared between them (the interpreter, the modules a
    forked child inherited) counted once in all rather than once in each."""
    total = 0
    for pid in ("self", _child_pid(app)):
        if pid is None:
            continue
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:")), 0)
    return total


def _synced_clock(reading: str, speed: float):
    """A clock running with the served drill's world clock: its speed, and its
    time as the suite read it (`ServedDrill.clock_reading`: the world's time and
    the monotonic time of the reading, which this process shares). Not read
    over HTTP from here: the console's own process has no HTTP client loaded
    (urllib.request, http.client and the email package, 2 MB), and the probe's
    must not either."""
    from datetime import datetime, timedelta

    from console.clock import ScaledClock

    now, _, at = reading.rpartition("@")
    return ScaledClock(datetime.fromisoformat(now) + timedelta(seconds=(time.monotonic() - float(at)) * speed), speed)


async def main(args: argparse.Namespace) -> dict:
    from bench.frame_probe import FrameProbe

    if args.peer:
        return await peer(args)
    from console.clock import SystemClock

    config = cli._load(args.config)
    clock = _synced_clock(args.drill_clock, args.speed) if args.speed != 1.0 else SystemClock()
    # As `watch` does: the refresh process starts before the session is built.
    early = None if args.in_process else cli._early_refresh_process(config, clock)
    session = cli._session(config, clock=clock, store_path=Path(args.store) if args.store else None, refresh_process=early)
    if config.ui.refresh_process and not args.in_process:
        session.start_refresh_process()  # as `watch` does (cli._run_tui), before the UI's imports
        session.begin_first_refresh()
    from console.ui.app import build_app

    cli.codecache.release()  # as `watch` does (cli._run_tui)
    app = build_app(session, theme=config.ui.theme)
    t_app = time.monotonic()
    out: dict = {"t_start": T_START, "t_cli_imported": T_CLI, "t_app_built": t_app, "services": len(session.services)}

    # Refresh cycles, timed where the app awaits them. For the keys, a cycle
    # lasts from then until the app has painted it (its table, then its banner
    # and panes: `_collect_between_frames` runs after that frame): a key while
    # the UI applies a cycle's views is a key during the cycle, not an idle one.
    cycles: list[tuple[float, float]] = []
    refreshing = {"since": None, "in_flight": 0, "returns": 0}
    original_refresh = session.refresh

    async def timed_refresh(only=None):
        began = time.monotonic()
        refreshing["in_flight"] += 1
        if refreshing["since"] is None:
            refreshing["since"] = began
        try:
            return await original_refresh(only)
        finally:
            refreshing["in_flight"] -= 1
            refreshing["returns"] += not refreshing["in_flight"]
            cycles.append((began, time.monotonic()))

    session.refresh = timed_refresh
    original_collect = app._collect_between_frames

    def painted() -> None:
        original_collect()
        if not refreshing["in_flight"]:
            refreshing["since"] = None

    app._collect_between_frames = painted

    first = {"frame": None, "data": None}
    pending = {"key": None, "target": None, "done": None}
    latencies: list[dict] = []

    def on_frame(now: float) -> None:
        if first["frame"] is None:
            first["frame"] = now
        if first["data"] is None and app.views:
            first["data"] = now
        key = pending["key"]
        if key is not None and _cursor(app) == pending["target"]:
            latencies.append({"ms": (now - key) * 1000, "kind": pending["kind"]})
            pending["key"] = None
            pending["done"].set()

    probe = FrameProbe(app, on_frame)  # before the app runs: its first frame counts
    async with app.run_test(headless=True, size=(args.width, args.height)) as pilot:
        while first["data"] is None:
            await _wait(0.005)
        out.update(t_first_frame=first["frame"], t_first_data=first["data"])
        if args.mode == "startup" and args.steady_cycles:
            deadline = time.monotonic() + args.timeout
            while len(cycles) < 1 + args.steady_cycles and time.monotonic() < deadline:
                await _wait(0.05)
        elif args.mode == "idle":
            out.update(await _idle(args, _child_pid(app)))
        if args.mode == "memory":
            started = session.clock.now()
            peak_pss = 0
            while (session.clock.now() - started).total_seconds() < args.sim_seconds:
                await _wait(0.2)
                peak_pss = max(peak_pss, _pss_kib(app))
            out["sim_seconds"] = (session.clock.now() - started).total_seconds()
            out["peak_pss_kib"] = peak_pss
        elif args.mode == "keys":
            await _keys(app, pilot, args, refreshing, pending, latencies)
        out["cycles"] = [{"began": b, "seconds": e - b} for b, e in cycles]
        out["frames"] = len(probe.frames)
        out["latencies"] = latencies
        out.update(_memory(app))
        app.exit()
    return out


async def _idle(args, child: int | None = None) -> dict:
    """CPU time of this process (all threads) over `--window` seconds of wall
    time, after `--warmup` seconds; the probe itself only sleeps meanwhile."""
    import asyncio
    import resource

    await asyncio.sleep(args.warmup)

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime + _child_cpu(child)

    wall, used = time.monotonic(), cpu()
    await asyncio.sleep(args.window)
    wall, used = time.monotonic() - wall, cpu() - used
    return {"idle_window_s": wall, "idle_cpu_s": used, "idle_cpu_percent": 100 * used / wall}


async def peer(args: argparse.Namespace) -> dict:
    """The bare-Textual peer under the same probe (see the module's docstring)."""
    from bench.bare_textual import BareTextualApp
    from bench.frame_probe import FrameProbe

    app = BareTextualApp()
    out: dict = {"t_start": T_START, "t_cli_imported": T_CLI, "t_app_built": time.monotonic(), "peer": True}
    first = {"frame": None}
    pending = {"key": None, "target": None, "done": None}
    latencies: list[dict] = []
    never = {"since": None}

    def on_frame(now: float) -> None:
        if first["frame"] is None:
            first["frame"] = now
        key = pending["key"]
        if key is not None and _cursor(app) == pending["target"]:
            latencies.append({"ms": (now - key) * 1000, "kind": "idle"})
            pending["key"] = None
            pending["done"].set()

    probe = FrameProbe(app, on_frame)
    async with app.run_test(headless=True, size=(args.width, args.height)) as pilot:
        while first["frame"] is None:
            await _wait(0.005)
        out.update(t_first_frame=first["frame"], t_first_data=first["frame"], cycles=[])
        if args.mode == "keys":
            await _keys(app, pilot, args, never, pending, latencies, idle_only=True)
        elif args.mode == "idle":
            out.update(await _idle(args))
        out["frames"] = len(probe.frames)
        out["latencies"] = latencies
        out.update(_memory(app))
        app.exit()
    return out


def _cursor(app) -> str | None:
    """The row key under the service table's cursor: what an arrow key changes
    (in the console, Enter then pins that service for the banner and panes)."""
    table = app.query_one("#services")
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


async def _keys(app, pilot, args, refreshing, pending, latencies, idle_only: bool = False) -> None:
    """Arrow keys from a thread (as the terminal driver sends them), while a cycle runs."""
    import random
    import threading

    from textual import events

    table = app.query_one("#services")
    table.focus()
    await pilot.pause(0.1)
    stop = threading.Event()
    loop_done = threading.Event()
    rng = random.Random(9)

    # Keys in turn: during a cycle, idle, during a cycle, idle, and at the moment a
    # cycle's views arrive in the UI (the start of its painting: the worst moment,
    # reported on its own rather than in the two kinds of random moments).
    kinds = ("idle",) if idle_only else ("cycle", "idle", "cycle", "idle", "apply")

    def sender() -> None:
        try:
            sent = 0
            while sent < args.keys and not stop.is_set():
                kind = kinds[sent % len(kinds)]
                if kind == "apply":
                    seen = refreshing["returns"]
                    while refreshing["returns"] == seen and not stop.is_set():
                        time.sleep(0.001)
                else:
                    want_cycle = kind == "cycle"
                    if (refreshing["since"] is not None) != want_cycle:
                        time.sleep(0.002)
                        continue
                    # Somewhere inside the cycle (or the idle time between two), not always at its start.
                    time.sleep(rng.uniform(0.0, 0.15))
                    if (refreshing["since"] is not None) != want_cycle:
                        continue
                # The rows in the order shown (the console sorts them by severity).
                services = [row.key.value for row in table.ordered_rows]
                index = services.index(_cursor(app))
                step = 1 if index + 1 < len(services) else -1
                if index > 0 and rng.random() < 0.3:
                    step = -1
                target = services[index + step]
                done = threading.Event()
                pending.update(target=target, done=done, kind=kind)
                pending["key"] = time.monotonic()
                app._driver.process_message(events.Key("down" if step > 0 else "up", None))
                if not done.wait(10):
                    pending["key"] = None
                    latencies.append({"ms": None, "kind": kind})
                sent += 1
                time.sleep(0.03)
        finally:
            loop_done.set()

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    deadline = time.monotonic() + args.timeout
    while not loop_done.is_set() and time.monotonic() < deadline:
        await _wait(0.05)
    stop.set()


if __name__ == "__main__":
    import asyncio

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("startup", "memory", "keys", "idle"))
    parser.add_argument("--peer", action="store_true")
    parser.add_argument("--in-process", action="store_true", help="The refresh cycle on the UI's interpreter (before issue 17).")
    parser.add_argument("--steady-cycles", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--config")
    parser.add_argument("--store")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--drill-clock", help="the served drill's clock, ISO@MONOTONIC (ServedDrill.clock_reading)")
    parser.add_argument("--sim-seconds", type=float, default=600.0)
    parser.add_argument("--keys", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--width", type=int, default=140)
    parser.add_argument("--height", type=int, default=45)
    result = asyncio.run(main(parser.parse_args()))
    if "--peer" not in sys.argv:
        cli.codecache.save()  # as the console script does as it exits
    print("BENCH-RESULT " + json.dumps(result), flush=True)
