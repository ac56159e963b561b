"""The refresh cycle in its own process.

The TUI paints frames and answers keys on one interpreter. A refresh cycle of
hundreds of services (HTTP, JSON, the Kubernetes client, Prometheus parsing)
run on the same interpreter competes with them for the GIL, so a key pressed
during a cycle waited for it. `PollerProcess` runs the same Poller
(console.signals.poller), built from the same config by the same code
(console.sources), in a child process and streams its frozen Snapshots back.
It has the Poller's interface (`cycle`, `invalidate`, `aclose`), so the
Session drives either; decisions, the incident store and the gate stay in
the console's process.

What crosses the pipe each cycle (pickled, the child's stdout):
- each Snapshot without its sparklines, rollout history and provenance;
- the sparklines as changes: how many points left the front and the new
  points at the back (a whole sparkline when it was reloaded or changed
  otherwise), so a steady cycle sends two points per service, not 480;
- the rollout history and the provenance only when they changed.
Between cycles the console may also ask for one service's surroundings (its
routing, rollback-lease holder and git owner: `PollerProcess.surroundings`),
which the panes show; the child reads them from its own platforms.

Start-up: the child starts when the console does (`Session.start_refresh_process`)
and runs its first cycle at once, overlapping the UI's own imports and first
frame; the first request gets that cycle if it is younger than the refresh
interval. The first child is forked from the console when the console runs no
thread yet (`watch`, before Textual loads): it starts with the interpreter,
the config and its validated models already in memory, rather than a new
interpreter importing them again, and its first cycle is ready about when the
first frame is. A child started later (a restart, or a console already
running threads, such as `drill` with its world's server) is a new
interpreter, `python -m console.refresher`: forking a process with threads can
leave a lock held in the child forever. Cycles read instant values only: the sparklines' 30-minute history
loads between cycles, after the first values are on screen.

Time: the child follows the console's clock (a drill's simulated time, paused
or sped up): every request carries the clock's reading, its rate and the
monotonic moment of the reading.

Failure: a child that exits, or does not answer a cycle within `timeout`
seconds, raises RefreshProcessError naming what happened and the last lines
it wrote to stderr; the next cycle starts a new child. The child exits when
its stdin closes, so it never outlives the console.

Run as `python -m console.refresher` by PollerProcess only.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import gc
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from console import heap
from console.clock import Clock, RelayedClock, rate
from console.config import Config
from console.model import NO_SAMPLES, Samples, Snapshot, Trail
from console.platforms.base import Surroundings, read_surroundings

SAME = "same"
"""In a reply: this field did not change since the snapshot before."""

CYCLE_TIMEOUT = 120.0
"""Seconds a cycle may take in the child before the console gives up on it
(every backend call in the cycle is bounded far below this)."""


FALL_BACK_AFTER = 3
"""Cycles in a row the refresh process may fail before the session polls in
its own process instead (console.session)."""

NICENESS = 5
"""How much lower the refresh process's CPU priority is than the console's."""


class RefreshProcessError(RuntimeError):
    """The refresh process exited or did not answer."""


# -- sparklines as changes -----------------------------------------------------


def sparkline_change(before: Samples | None, now: Samples) -> tuple:
    """How `now` differs from `before` (the sparkline sent last time):
    ("drop", k, new) when k samples left the front and the Samples `new` were
    appended (the poller's only steady-state changes), else ("all", now)."""
    if before is None:
        return ("all", now)
    if now is before:
        return ("drop", 0, NO_SAMPLES)
    if not before:
        return ("drop", 0, now)
    kept = now.count_through(before.last_time())
    dropped = len(before) - kept
    if dropped < 0:
        return ("all", now)
    # The same trail's windows share their samples: nothing to compare (the usual case).
    if not now.shares_tail_with(before, dropped) and now[:kept] != before[dropped:]:
        return ("all", now)
    return ("drop", dropped, now[kept:])


def apply_sparkline_change(points: Trail, change: tuple) -> None:
    """Bring `points` (what was received so far) up to date with `change`."""
    if change[0] == "all":
        points.replace(change[1])
        return
    _, dropped, new = change
    points.drop_first(min(dropped, len(points)))
    points.extend(new)


class Encoder:
    """The child's side: snapshots into what crosses the pipe."""

    def __init__(self) -> None:
        self._sent: dict[str, tuple] = {}

    def encode(self, snapshots: list[Snapshot]) -> list[tuple]:
        out = []
        for snapshot in snapshots:
            metrics = snapshot.metrics
            last = self._sent.get(snapshot.service)
            errors = sparkline_change(last[0] if last else None, metrics.error_rate_history)
            latency = sparkline_change(last[1] if last else None, metrics.latency_history)
            history = SAME if last is not None and last[2] == snapshot.history else snapshot.history
            provenance = SAME if last is not None and last[3] == snapshot.provenance else snapshot.provenance
            self._sent[snapshot.service] = (metrics.error_rate_history, metrics.latency_history,
                                            snapshot.history, snapshot.provenance)
            bare = replace(snapshot, history=(), provenance=None,
                           metrics=replace(metrics, error_rate_history=NO_SAMPLES, latency_history=NO_SAMPLES))
            out.append((bare, errors, latency, history, provenance))
        return out


class Decoder:
    """The console's side: what crossed the pipe back into whole snapshots."""

    def __init__(self) -> None:
        self._trails: dict[tuple[str, str], Trail] = {}
        self._last: dict[str, tuple] = {}

    def _sparkline(self, key: tuple[str, str], change: tuple) -> Samples:
        """The sparkline after `change`; the same Samples as before when nothing
        changed (a quiet service's snapshots share it rather than a copy every cycle)."""
        trail = self._trails.get(key)
        if trail is None:
            trail = self._trails[key] = Trail()
        apply_sparkline_change(trail, change)
        return trail.samples()

    def decode(self, payload: list[tuple]) -> list[Snapshot]:
        """The snapshots `payload` (a cycle's reply) stands for. It is emptied
        as it is read: a sparkline that came whole is copied into its trail,
        and the copy that came through the pipe is freed then, not after the
        last service's (at 500 services, the sparklines' history is about
        4 MB: it was held twice as it arrived). After many whole sparklines
        the freed copies' memory is given back (console.heap)."""
        snapshots = []
        whole = 0
        payload.reverse()
        while payload:
            bare, errors, latency, history, provenance = payload.pop()
            whole += sum(len(c[1]) for c in (errors, latency) if c[0] == "all")
            name = bare.service
            last_history, last_provenance = self._last.get(name, ((), None))
            history = last_history if history == SAME else history
            provenance = last_provenance if provenance == SAME else provenance
            self._last[name] = (history, provenance)
            metrics = replace(bare.metrics, error_rate_history=self._sparkline((name, "error_rate"), errors),
                              latency_history=self._sparkline((name, "latency"), latency))
            snapshots.append(replace(bare, metrics=metrics, history=history, provenance=provenance))
        if whole >= heap.SPARKLINE_BURST:
            del bare, errors, latency  # the last whole sparklines that came through the pipe
            heap.give_back()
        return snapshots


# -- the console's side ---------------------------------------------------------


def _command() -> list[str]:
    return [sys.executable, "-m", "console.refresher"]


def _popen(command: list[str]) -> subprocess.Popen:
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, close_fds=True)


class _Forked:
    """A child forked from the console, with the part of subprocess.Popen's
    interface PollerProcess uses (pid, the three pipes, poll, wait, kill)."""

    def __init__(self, pid: int, stdin, stdout, stderr) -> None:
        self.pid = pid
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already (never by us): it ended
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"refresh process {self.pid}", timeout or 0)
            time.sleep(0.005)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _fork(setup: tuple) -> _Forked | None:
    """The child forked from this process, running `main(setup)`; None where
    forking is not safe (another thread runs: a lock it holds would stay held
    in the child) or not possible."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return None
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()  # or the child writes the console's buffered output again
        except (OSError, ValueError, AttributeError):
            pass
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    errors_r, errors_w = os.pipe()
    # What the console has loaded so far (modules, the config) stays as it is:
    # the collector neither scans it again nor writes to its pages, so the
    # child keeps sharing them rather than copying each one it touches.
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the console's code
        code = 1
        try:
            for fd in (requests_w, replies_r, errors_r):
                os.close(fd)
            os.dup2(requests_r, 0)
            os.dup2(replies_w, 1)
            os.dup2(errors_w, 2)
            for fd in (requests_r, replies_w, errors_w):
                os.close(fd)
            # The console's own streams may be replaced (a test's capture): write to the pipes.
            sys.stdout = open(1, "w", buffering=1, closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False)
            code = main(setup)
        except BaseException:
            try:
                traceback.print_exc()
                sys.stderr.flush()
            except BaseException:
                pass
        finally:
            os._exit(code)
    for fd in (requests_r, replies_w, errors_w):
        os.close(fd)
    return _Forked(pid, os.fdopen(requests_w, "wb"), os.fdopen(replies_r, "rb"), os.fdopen(errors_r, "rb"))


def _reading(clock: Clock) -> tuple[datetime, float, float]:
    return clock.now(), rate(clock), time.monotonic()


class PollerProcess:
    """The Poller in a child process, with the Poller's interface."""

    def __init__(self, config: Config, clock: Clock, *, max_age: float, timeout: float = CYCLE_TIMEOUT) -> None:
        self._config = config
        self._clock = clock
        self._max_age = max_age
        self._timeout = timeout
        self._child: subprocess.Popen | None = None
        self._write_lock = threading.Lock()
        self._cycle_lock = threading.Lock()
        self._stderr: deque[str] = deque(maxlen=20)
        self._decoder = Decoder()
        self._invalidated: dict[str, datetime | None] = {}
        self._closed = False
        self.cycles = 0
        self.surroundings_read = 0
        self.restarts = 0
        self.failures = 0
        """Cycles failed in a row (0 after an answer)."""
        self.command = _command()
        self.forked = False
        """Whether the running child was forked from this process (else a new interpreter)."""
        self._start(prefetch=True)

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def _start(self, prefetch: bool) -> None:
        setup = ("setup", self._config, *_reading(self._clock), prefetch)
        child = _fork(setup) if self.cycles == 0 and self.restarts == 0 else None
        self.forked = child is not None
        if child is None:
            child = _popen(self.command)
        self._child = child
        self._decoder = Decoder()  # a new child sends whole sparklines again
        self._stderr.clear()
        threading.Thread(target=self._drain, args=(child,), name="refresher-stderr", daemon=True).start()
        # The config (hundreds of services: more than a pipe holds) is written
        # from a thread: the console goes on loading its UI while the child
        # imports what it needs to read it. The write lock, held until the
        # setup is written, keeps every later message behind it.
        messages = [*(() if self.forked else (setup,)),  # a forked child has it already
                    *(("invalidate", service, at) for service, at in self._invalidated.items())]
        self._write_lock.acquire()
        threading.Thread(target=self._write_setup, args=(child, messages), name="refresher-setup", daemon=True).start()

    def _write_setup(self, child: subprocess.Popen, messages: list[tuple]) -> None:
        try:
            for message in messages:
                pickle.dump(message, child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            child.stdin.flush()
        except (OSError, ValueError):
            pass  # the child is gone: the next cycle's read says so
        finally:
            self._write_lock.release()

    def _drain(self, child: subprocess.Popen) -> None:
        assert child.stderr is not None
        for line in child.stderr:
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def _send(self, message: tuple) -> None:
        child = self._child
        if child is None or child.stdin is None:
            raise RefreshProcessError("the refresh process is not running")
        with self._write_lock:
            try:
                pickle.dump(message, child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                child.stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as err:
                raise RefreshProcessError(self._gone(f"could not be written to ({err})")) from None

    def _gone(self, what: str) -> str:
        child = self._child
        code = child.poll() if child is not None else None
        status = f", exit code {code}" if code is not None else ""
        said = " | ".join(line for line in list(self._stderr)[-5:] if line)
        return f"The refresh process {what}{status}" + (f": {said}" if said else "") + ". The next refresh starts a new one."

    async def cycle(self, only: str | None = None) -> list[Snapshot]:
        """One refresh cycle in the child (see Poller.cycle)."""
        return await asyncio.to_thread(self._cycle, only)

    def _cycle(self, only: str | None) -> list[Snapshot]:
        try:
            snapshots = self._cycle_once(only)
        except RefreshProcessError:
            self.failures += 1
            raise
        self.failures = 0
        return snapshots

    def _cycle_once(self, only: str | None) -> list[Snapshot]:
        with self._cycle_lock:
            if self._closed:
                raise RefreshProcessError("The refresh process was closed.")
            if self._child is not None and self._child.poll() is not None:
                # It ended between cycles: said once, and the next cycle starts a new one.
                ended = self._gone("ended")
                self._child = None
                raise RefreshProcessError(ended)
            if self._child is None:
                self.restarts += 1
                self._start(prefetch=False)
            reply = self._exchange(("cycle", only, *_reading(self._clock), self._max_age))
            if reply[0] == "error":
                raise RefreshProcessError(f"The refresh process failed: {reply[1]}")
            self.cycles += 1
            return self._decoder.decode(reply[1])

    def _exchange(self, message: tuple) -> tuple:
        """Send `message` to the running child and read its reply (the cycle lock held)."""
        child = self._child
        assert child is not None
        # A watchdog: a child that does not answer in time is killed, so the write or the read ends.
        timer = threading.Timer(self._timeout, child.kill)
        timer.daemon = True
        timer.start()
        try:
            self._send(message)
            return pickle.load(child.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as err:
            late = not timer.is_alive()
            child.kill()
            child.wait(5)
            failed = self._gone(
                f"did not answer within {self._timeout:g} s and was stopped" if late else f"ended ({type(err).__name__})"
            )
            self._child = None
            raise RefreshProcessError(failed) from None
        finally:
            timer.cancel()

    def surroundings(self, service: str, operator: str) -> Surroundings:
        """`service`'s routing, lease holder and git owner (platforms.base.Surroundings),
        read by the child between cycles: the requests, their parsing and the
        Kubernetes client stay out of the console's process."""
        with self._cycle_lock:
            child = self._child
            if self._closed or child is None or child.poll() is not None:
                raise RefreshProcessError("The refresh process is not running.")
            reply = self._exchange(("surroundings", service, operator))
            if reply[0] == "error":
                raise RefreshProcessError(f"The refresh process failed: {reply[1]}")
            self.surroundings_read += 1
            return reply[1]

    def invalidate(self, service: str, changed_at: datetime | None = None) -> None:
        """See Poller.invalidate; remembered, so a new child is told too."""
        self._invalidated[service] = changed_at
        child = self._child  # a cycle on another thread may drop it meanwhile
        if child is not None and child.poll() is None:
            try:
                self._send(("invalidate", service, changed_at))
            except RefreshProcessError:
                pass  # the next cycle starts a new child, which is told then

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Ask the child to close its clients and exit; stop it if it does not."""
        self._closed = True
        child, self._child = self._child, None
        if child is None:
            return
        # A write to a child that reads nothing (stopped, or still importing while
        # its config fills the pipe) holds the write lock: wait a little, then stop it.
        if child.poll() is None and child.stdin is not None and self._write_lock.acquire(timeout=2):
            try:
                pickle.dump(("close",), child.stdin)
                child.stdin.flush()
                child.stdin.close()
            except (OSError, ValueError):
                pass
            finally:
                self._write_lock.release()
        try:
            child.wait(3)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


# -- the child --------------------------------------------------------------------


def main(setup: tuple | None = None) -> int:
    """The child: build the poller from the config it is sent (or, forked, was
    given), answer cycles."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the console stops it (Ctrl-C is the console's key)
    if setup is None:  # a new interpreter (a forked child has the console's setting)
        heap.limit_arenas()
    requests = open(0, "rb", closefd=False)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to stderr, never into the replies
    # What every cycle needs, imported while the config is on its way.
    from console.signals import tls

    with tls.without_default_certs():  # its HTTPS requests bring their own (console.signals.tls)
        import aiohttp  # noqa: F401  (the health checks' and Prometheus' client)

    from console.platforms import kubernetes
    from console.sources import build_platform, build_poller

    kubernetes.refresh_only()  # the console's process plans; this one only refreshes
    from console import codecache

    codecache.release()  # a forked child's copy of the start-up's code cache: its classes are made
    if setup is None:
        try:
            setup = pickle.load(requests)
        except EOFError:
            return 0
    _, config, now, clock_rate, at, prefetch = setup
    clock = RelayedClock(now, clock_rate, at)

    connections: dict = {}
    platforms = {s.name: build_platform(config, s, clock, connections) for s in config.services}
    poller = build_poller(config, platforms, clock)
    poller.history_in_background = True
    encoder = Encoder()
    loop = asyncio.new_event_loop()

    def cycle(only: str | None) -> list[Snapshot] | str:
        try:
            return loop.run_until_complete(poller.cycle(only))
        except Exception as err:  # the poller reports failures in snapshots; this is a bug's safety net
            return f"{type(err).__name__}: {err}"

    # The first cycle, run before anyone asks; encoded only when sent (the encoder remembers what was sent).
    ready: list[Snapshot] | str | None = None
    ready_at: datetime | None = None
    if prefetch:
        ready_at = clock.now()
        ready = cycle(None)
    # Forked during the console's start-up, the collector paused (console/launch.py): start-up is over.
    gc.enable()
    try:
        # Background work from now on: when the CPUs are busy, keys and frames come first.
        # Not before: the console's first frame waits for the first cycle (issue 17), and a
        # niced first cycle on a busy machine came after that wait, leaving the frame empty.
        os.nice(NICENESS)
    except OSError:
        pass
    try:
        while True:
            try:
                message: Any = pickle.load(requests)
            except EOFError:
                break
            if message[0] == "close":
                break
            if message[0] == "invalidate":
                poller.invalidate(message[1], message[2])
                ready = None  # the prefetched history may be the old one
                continue
            if message[0] == "surroundings":
                _, service, operator = message
                try:
                    answer: tuple = ("surroundings", read_surroundings(service, platforms[service], operator))
                except Exception as err:  # read_surroundings turns platform failures into sentences; this is a bug's
                    answer = ("error", f"{type(err).__name__}: {err}")
                pickle.dump(answer, replies, protocol=pickle.HIGHEST_PROTOCOL)
                replies.flush()
                continue
            _, only, now, clock_rate, at, max_age = message
            clock.follow(now, clock_rate, at)
            if ready is not None and only is None and ready_at is not None and (clock.now() - ready_at).total_seconds() <= max_age:
                result = ready
            else:
                result = cycle(only)
            ready = None
            reply = ("error", result) if isinstance(result, str) else ("cycle", encoder.encode(result))
            pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
            del reply, result
            heap.give_back()  # the cycle's answers and snapshots, freed (console.heap)
            if poller.history_pending:
                # The sparklines fill between cycles: the first values were shown without waiting for them.
                try:
                    loop.run_until_complete(poller.load_history())
                except Exception as err:  # a failed load is retried after the next cycle
                    print(f"sparkline history not loaded: {type(err).__name__}: {err}", file=sys.stderr)
                else:
                    # What the child holds for good now (clients, platforms, the history)
                    # leaves the collector's full passes, which would otherwise rescan it
                    # (and, in a forked child, copy the pages it shares) every few cycles.
                    gc.freeze()
                    heap.give_back()  # the range queries' answers are freed (console.heap)
    finally:
        loop.run_until_complete(poller.aclose())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
