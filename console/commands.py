"""One way to run a command: an argv list (no shell), a timeout after which
the whole process group is killed (so `npm` takes its `node` with it, `docker
compose` its plugins), output captured and secrets masked. Serves the
database commands and Docker Compose alike. Never raises for a command that
fails, cannot start or times out: the result says so (`reason`, `error`)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from console.redact import MASK, redact

# Lines that say what went wrong in psql's and pg_restore's output (the sentence quotes them first).
ERROR_PREFIXES = ("ERROR:", "FATAL:", "psql: error:", "pg_restore: error:")

MISSING = "missing"
DENIED = "denied"
TIMED_OUT = "timeout"

MAX_OUTPUT_BYTES = 16 * 1024 * 1024
"""Of a command's output (each of stdout and stderr), at most this much is kept."""
OUTPUT_GRACE_SECONDS = 5.0
"""After a command ends, how long its output may still take to arrive."""


def mask(text: str, secrets: Sequence[str]) -> str:
    """`text` with each secret replaced by the mask, then redacted."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return redact(text)


def show(argv: Sequence[str], secrets: Sequence[str] = ()) -> str:
    """An argv as it is shown to the operator (shell-quoted, secrets masked); never executed."""
    return mask(shlex.join(argv), secrets)


class _BoundedReader:
    """Drains one pipe in a daemon thread, keeping its first MAX_OUTPUT_BYTES
    (a full pipe would stall the command; a query printing gigabytes costs no
    memory beyond that)."""

    def __init__(self, pipe) -> None:
        self._pipe = pipe
        self._kept = bytearray()
        self._dropped = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while chunk := self._pipe.read1(65536):
                room = max(0, MAX_OUTPUT_BYTES - len(self._kept))
                self._kept += chunk[:room]
                self._dropped += len(chunk) - len(chunk[:room])
        except (OSError, ValueError):
            pass

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._pipe.close()

    def data(self) -> bytes:
        kept = bytes(self._kept)
        if self._dropped:
            kept += f"\n[{self._dropped} more bytes of output not kept]".encode()
        return kept


@dataclass(frozen=True)
class CommandResult:
    """A finished (or stopped) command; output already masked."""

    command: str  # as shown
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    # Set when the command did not run or did not finish: the operator sentence.
    error: str | None = None
    # Why it did not run or finish: MISSING, DENIED, TIMED_OUT (None when it ran to its end).
    reason: str | None = None
    argv: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0

    @property
    def display(self) -> str:
        return self.command

    @property
    def output(self) -> str:
        """What it printed, stdout then stderr."""
        return "\n".join(part.rstrip("\n") for part in (self.stdout, self.stderr) if part.strip())

    def failure(self) -> str:
        """Why it failed, as a sentence (with its error line: psql's own, not the caret under the statement)."""
        if self.error:
            return self.error
        lines = [line.strip() for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        said = next((line for line in lines if line.startswith(ERROR_PREFIXES)), None) or next(
            (line for line in reversed(lines) if any(c.isalnum() for c in line)), "")
        return f"`{self.command}` exited with status {self.returncode}" + (f": {said}" if said else "")

    def summary(self, limit: int = 20) -> str:
        """The last `limit` lines it printed (stderr after stdout)."""
        lines = [ln.rstrip() for ln in (self.stdout + "\n" + self.stderr).splitlines() if ln.strip()]
        if len(lines) > limit:
            return "\n".join([f"... ({len(lines) - limit} more lines)"] + lines[-limit:])
        return "\n".join(lines)


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    secrets: Sequence[str] = (),
    what: str = "",
) -> CommandResult:
    """Run an argv list (no shell) and wait at most `timeout` seconds; on
    timeout the whole process group is killed. `what` ends the timeout
    sentence (what to check before trying again)."""
    shown = show(argv, secrets)
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            # Its own process group, so a timeout also stops what it started.
            start_new_session=True,
        )
    except FileNotFoundError:
        return CommandResult(shown, None, "", "", 0.0,
                             f"`{argv[0]}` was not found: install it, or fix the command in the config.", MISSING,
                             tuple(argv))
    except PermissionError:
        return CommandResult(shown, None, "", "", 0.0, f"`{argv[0]}` is not executable for this user.", DENIED,
                             tuple(argv))
    except OSError as err:
        return CommandResult(shown, None, "", "", 0.0, f"`{shown}` could not be started: {err.strerror}.", MISSING,
                             tuple(argv))
    error = reason = None
    readers = [_BoundedReader(process.stdout), _BoundedReader(process.stderr)]
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        error = f"`{shown}` did not finish within {timeout:g} s and was stopped; {what or 'check it and try again'}."
        reason = TIMED_OUT
    # Something the command started in another session may still hold the pipes:
    # wait a little for the rest of the output, never for ever.
    for reader in readers:
        reader.join(OUTPUT_GRACE_SECONDS)
    out, err = (reader.data() for reader in readers)
    seconds = time.monotonic() - started
    decode = lambda data: mask(data.decode("utf-8", "replace"), secrets)  # noqa: E731
    return CommandResult(shown, process.returncode, decode(out), decode(err), seconds, error, reason, tuple(argv))
