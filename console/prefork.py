"""The refresh process, started the moment the console starts (issue 17).

The TUI's first frame shows the first refresh's data, so the refresh
process's first cycle is on the way to it: the process must import what a
cycle needs (aiohttp, the sources, the Kubernetes client: about 0.2 s) and
open its first connections. Forked from the console once the console has
loaded its config (console.refresher's `_fork`), it started that work about
0.25 s after launch. Forked here instead, by the entry point
(console/launch.py) before it imports anything else, the child starts at
once: its imports run on the other CPU while the console imports its own and
loads the config, and it waits for the config (the "setup" message) with
everything else ready. It is the same child either way,
`console.refresher.main` with the three pipes as its standard streams; the
Session adopts it (`adopt`) when the TUI starts its refresh process.

It starts only for the commands that open the TUI (`wanted`); a console that
does not adopt it (`ui.refresh_process: false`, a bad config, `--help`)
discards it, and a console that ends closes its end of the pipe, on which the
child exits. Forking is safe here: no thread runs yet.

This module imports only the standard library's smallest modules: it runs
before everything else.
"""

from __future__ import annotations

import os
import signal
import sys

TUI_COMMANDS = ("watch", "drill")
"""The commands that open the TUI (and run the console without a command)."""

NOT_TUI_OPTIONS = frozenset({"-h", "--help", "--version", "--list", "--check", "--serve-only"})
"""Options with which those commands do not open it."""

_child: tuple[int, int, int, int] | None = None
"""The child started: its pid, and the console's ends of its three pipes
(requests written, replies read, its stderr read)."""


def wanted(argv: list[str]) -> bool:
    """Whether these arguments (without the program's name) open the TUI: no
    command, or `watch`/`drill`, and no option that makes them do something else."""
    if any(arg.split("=", 1)[0] in NOT_TUI_OPTIONS for arg in argv):
        return False
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return command is None or command in TUI_COMMANDS


def run_child(requests: int, replies: int, errors: int, run) -> None:
    """In a child just forked: the three pipes become its standard streams,
    then `run()`; never returns (os._exit with its exit code)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the console's key; the console stops it
        os.dup2(requests, 0)
        os.dup2(replies, 1)
        os.dup2(errors, 2)
        for fd in (requests, replies, errors):
            if fd > 2:
                os.close(fd)
        # The console's own streams may be replaced (a test's capture): write to the pipes.
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        code = run()
    except BaseException:
        try:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:
            pass
    finally:
        os._exit(code if isinstance(code, int) else 1)


def _refresher_main() -> int:
    from console.refresher import main

    return main()


def start() -> bool:
    """Fork the refresh process now (once); True when it runs."""
    global _child
    if _child is not None:
        return True
    if not hasattr(os, "fork"):
        return False
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    errors_r, errors_w = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()  # or the child writes the console's buffered output again
        except (OSError, ValueError, AttributeError):
            pass
    try:
        pid = os.fork()
    except OSError:
        for fd in (requests_r, requests_w, replies_r, replies_w, errors_r, errors_w):
            os.close(fd)
        return False
    if pid == 0:  # the child: never returns into the console's code
        for fd in (requests_w, replies_r, errors_r):
            os.close(fd)
        run_child(requests_r, replies_w, errors_w, _refresher_main)
    for fd in (requests_r, replies_w, errors_w):
        os.close(fd)
    for fd in (requests_w, replies_r, errors_r):
        os.set_inheritable(fd, False)
    _child = (pid, requests_w, replies_r, errors_r)
    return True


def adopt() -> tuple[int, int, int, int] | None:
    """The child started by `start` (its pid and the console's pipe ends), handed
    over once; None when none was started or it was adopted already."""
    global _child
    child, _child = _child, None
    return child


def discard() -> None:
    """Let a child nobody adopted go: its requests pipe closes, on which it
    exits; it is reaped from a thread (it may still be importing)."""
    child = adopt()
    if child is None:
        return
    pid, *fds = child
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    import threading

    def reap() -> None:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    threading.Thread(target=reap, name="prefork-reap", daemon=True).start()
