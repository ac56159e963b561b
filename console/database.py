"""A service's database, and the runner of the guided database procedures.

The source half: the migration state (a command or a SQL query), the damage
assessment, the integrity check, `pg_restore` and `psql -f`. Every command is
an argv list run without a shell, with a timeout; the DSN never appears on a
command line: it is read from the environment variable the config names and
handed to `psql`/`pg_restore` (and to the configured commands) as libpq's PG*
environment variables. Everything shown or recorded passes through
console/redact.py, and the DSN's password is masked even where no pattern
would catch it.

The runner half: `CorruptionResponse` and `MigrationRollback` run the steps of
console/procedures.py's state machines against the database and the service's
platform, recording every step in the incident timeline before and after it
runs, so the procedure's state is the timeline's and survives a restart.
"""

from __future__ import annotations

import csv
import glob as globbing
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from console import incident as incidents
from console import procedures
from console.config import CommandOrLink, DatabaseConfig
from console.model import ApiCall, Event, Progress, RollbackPlan
from console.platforms.base import PlatformError, Scalable, lacks
from console.procedures import (
    DATA_CORRUPTION,
    MIGRATION_ROLLBACK,
    Migration,
    ProcedureError,
    ProcedureState,
    StepState,
)
from console.redact import MASK, redact

if TYPE_CHECKING:
    from console.session import Session

MIGRATION_STATUS_TIMEOUT = 10.0
"""Seconds the migration status may take: it runs in every refresh cycle, which must not stall on it."""

CONNECT_TIMEOUT = 5
"""Seconds libpq waits for a connection (PGCONNECT_TIMEOUT) unless the DSN says otherwise."""

POLL_INTERVAL_SECONDS = 0.2
"""Wall seconds between looks at the pods while waiting for a scale to take effect."""


class DatabaseError(Exception):
    """A database operation failed; `str(err)` says what happened and what to do."""


# --- DSNs ---------------------------------------------------------------------------------

# libpq connection keywords -> the environment variables libpq reads them from.
_KEYWORD_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "sslpassword": "PGSSLPASSWORD",
    "requiressl": "PGREQUIRESSL",
    "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}


def parse_dsn(dsn: str) -> dict[str, str]:
    """A libpq DSN (`postgresql://user:pass@host:port/db?sslmode=...` or
    `host=... dbname=... password=...`) as keyword -> value."""
    text = dsn.strip()
    if text.startswith(("postgresql://", "postgres://")):
        return _parse_uri(text)
    return _parse_keywords(text)


def _parse_uri(uri: str) -> dict[str, str]:
    rest = uri.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    result: dict[str, str] = {}
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        if user:
            result["user"] = unquote(user)
        if colon:
            result["password"] = unquote(password)
    hosts, ports = [], []
    for spec in filter(None, netloc.split(",")):
        if spec.startswith("["):  # [ipv6]:port
            host, _, port = spec[1:].partition("]")
            port = port.lstrip(":")
        else:
            host, _, port = spec.partition(":")
        hosts.append(unquote(host))
        ports.append(port)
    if any(hosts):
        result["host"] = ",".join(hosts)
    if any(ports):
        result["port"] = ",".join(ports)
    if path:
        result["dbname"] = unquote(path)
    for key, value in parse_qsl(query, keep_blank_values=True):
        result[key] = value
    return result


def _parse_keywords(text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise DatabaseError("The database DSN is malformed (a keyword without '='); check the DSN's format.")
        key = text[i:eq].strip()
        i = eq + 1
        while i < n and text[i].isspace():
            i += 1
        value = []
        if i < n and text[i] == "'":
            i += 1
            while i < n and text[i] != "'":
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            i += 1
        else:
            while i < n and not text[i].isspace():
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
        result[key] = "".join(value)
    return result


def pg_environment(dsn: str) -> dict[str, str]:
    """The PG* environment variables that make libpq tools connect as the DSN says."""
    env = {}
    for key, value in parse_dsn(dsn).items():
        name = _KEYWORD_ENV.get(key)
        if name is None:
            raise DatabaseError(
                f"The database DSN has a parameter the console cannot pass on ({key!r}); "
                "remove it or set it in the service's environment (PG* variables)."
            )
        env[name] = value
    env.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT))
    # Times come back in UTC, whatever the server's default.
    env["PGTZ"] = "UTC"
    env.setdefault("PGAPPNAME", "rollback-console")
    return env


# --- commands -------------------------------------------------------------------------------


def pg_binary(name: str) -> str:
    """A PostgreSQL client program: on PATH, else in Debian's versioned folders (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = globbing.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: procedures.version_key(Path(p).parent.parent.name), reverse=True)
    if candidates:
        return candidates[0]
    raise DatabaseError(
        f"{name} is not installed: install the PostgreSQL client tools (Debian: apt-get install "
        "postgresql-client) and try again."
    )


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return redact(text)


def show(argv: Sequence[str], secrets: Sequence[str] = ()) -> str:
    """An argv as it is shown to the operator (shell-quoted, secrets masked); never executed."""
    return _mask(shlex.join(argv), secrets)


# Lines that say what went wrong in psql's and pg_restore's output.
_ERROR_PREFIXES = ("ERROR:", "FATAL:", "psql: error:", "pg_restore: error:")


@dataclass(frozen=True)
class CommandResult:
    """A finished (or stopped) command; output already redacted."""

    command: str  # as shown
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    # Set when the command did not run or did not finish: the operator sentence.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0

    @property
    def output(self) -> str:
        """What it printed, stdout then stderr."""
        return "\n".join(part.rstrip("\n") for part in (self.stdout, self.stderr) if part.strip())

    def failure(self) -> str:
        """Why it failed, as a sentence (with its last line of error output)."""
        if self.error:
            return self.error
        lines = [line.strip() for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        # PostgreSQL's own error line, not the caret under the statement that follows it.
        said = next((line for line in lines if line.startswith(_ERROR_PREFIXES)), None) or next(
            (line for line in reversed(lines) if any(c.isalnum() for c in line)), "")
        return f"`{self.command}` exited with status {self.returncode}" + (f": {said}" if said else "")


MAX_OUTPUT_BYTES = 16 * 1024 * 1024
"""Of a command's output (each of stdout and stderr), at most this much is kept."""
OUTPUT_GRACE_SECONDS = 5.0
"""After a command ends, how long its output may still take to arrive."""


class _BoundedReader:
    """Drains one pipe in a daemon thread, keeping its first MAX_OUTPUT_BYTES."""

    def __init__(self, pipe) -> None:
        self._pipe = pipe
        self._kept = bytearray()
        self._dropped = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while chunk := self._pipe.read1(65536):
                room = MAX_OUTPUT_BYTES - len(self._kept)
                self._kept += chunk[:max(0, room)]
                self._dropped += max(0, len(chunk) - max(0, room))
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


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    secrets: Sequence[str] = (),
) -> CommandResult:
    """Run an argv list (no shell) and wait at most `timeout` seconds; on
    timeout the whole process group is killed. Never raises for a failing command."""
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
            # Its own process group, so a timeout also stops what it started (npm -> node).
            start_new_session=True,
        )
    except FileNotFoundError:
        return CommandResult(shown, None, "", "", 0.0, f"`{argv[0]}` was not found: install it, or fix the command in the config.")
    except OSError as err:
        return CommandResult(shown, None, "", "", 0.0, f"`{shown}` could not be started: {err.strerror}.")
    error = None
    # The output is drained as it comes (a full pipe would stall the command)
    # and kept up to MAX_OUTPUT_BYTES per stream, so a query printing gigabytes
    # costs no memory beyond that.
    readers = [_BoundedReader(process.stdout), _BoundedReader(process.stderr)]
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        error = f"`{shown}` did not finish within {timeout:g} s and was stopped; check the database and try again."
    # Something the command started in another session may still hold the pipes:
    # wait a little for the rest of the output, never for ever.
    for reader in readers:
        reader.join(OUTPUT_GRACE_SECONDS)
    out, err = (reader.data() for reader in readers)
    seconds = time.monotonic() - started
    decode = lambda data: _mask(data.decode("utf-8", "replace"), secrets)  # noqa: E731
    return CommandResult(shown, process.returncode, decode(out), decode(err), seconds, error)


# --- the database --------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    """A query's answer: the column names and rows as text (NULL is "")."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    command: str = ""

    @property
    def text(self) -> str:
        """A small table for the operator."""
        if not self.columns:
            return "(no result)"
        lines = [" | ".join(self.columns)]
        lines += [" | ".join(row) for row in self.rows]
        lines.append(f"({len(self.rows)} row{'s' if len(self.rows) != 1 else ''})")
        return "\n".join(lines)

    @property
    def scalar(self) -> str | None:
        """The single value of a one-row, one-column answer."""
        if len(self.rows) == 1 and len(self.rows[0]) == 1:
            return self.rows[0][0]
        return None

    def summary(self) -> str:
        if self.scalar is not None:
            return f"{self.columns[0]} = {self.scalar}"
        return f"{len(self.rows)} row{'s' if len(self.rows) != 1 else ''}"

    @property
    def finds_nothing(self) -> bool:
        """An integrity query passes when it finds nothing: no rows, or a first value of 0 or false."""
        if not self.rows:
            return True
        first = self.rows[0][0].strip().lower() if self.rows[0] else ""
        return len(self.rows) == 1 and first in ("0", "f", "false", "")


@dataclass(frozen=True)
class Verification:
    """The data integrity check's verdict."""

    ok: bool
    summary: str
    output: str
    command: str


@dataclass(frozen=True)
class MigrationState:
    """What the migration status source said, newest migration first."""

    migrations: tuple[Migration, ...] = ()
    source: str = ""
    checked_at: datetime | None = None
    error: str | None = None

    @property
    def newest(self) -> Migration | None:
        return self.migrations[0] if self.migrations else None


@dataclass(frozen=True)
class Backup:
    """A dump that can be restored."""

    path: str
    size: int
    modified: datetime

    @property
    def name(self) -> str:
        return Path(self.path).name


def _parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    return {"t": True, "true": True, "yes": True, "1": True, "f": False, "false": False, "no": False, "0": False}.get(text)


def parse_migration_output(stdout: str) -> tuple[Migration, ...]:
    """A status command's output: JSON (an object or a list of objects with
    name/version, applied_at, reversible), else text whose last non-empty line
    is the newest migration's name."""
    text = stdout.strip()
    if not text:
        return ()
    try:
        data = json.loads(text)
    except ValueError:
        return (Migration(text.splitlines()[-1].strip()),)
    items = data if isinstance(data, list) else [data]
    found = []
    for item in items:
        if isinstance(item, str):
            found.append(Migration(item))
        elif isinstance(item, dict) and (item.get("name") or item.get("version")):
            found.append(Migration(str(item.get("name") or item.get("version")), _parse_time(item.get("applied_at")),
                                   _parse_bool(item.get("reversible"))))
    return tuple(found)


_APPLIED_STATES = frozenset({"SUCCESS", "OUT_OF_ORDER", "FUTURE_SUCCESS", "BASELINE"})


def parse_migration_document(data: Any) -> tuple[Migration, ...]:
    """A migration status answer as JSON data: Spring Boot Actuator's
    `/actuator/flyway` (applied migrations are those with `installedOn`, named
    VERSION_DESCRIPTION; a `reversible` field is read when present), else what
    `parse_migration_output` reads."""
    if isinstance(data, dict) and isinstance(data.get("contexts"), dict):
        found = []
        for context in data["contexts"].values():
            for bean in ((context or {}).get("flywayBeans") or {}).values():
                for item in (bean or {}).get("migrations") or []:
                    if not isinstance(item, dict) or not item.get("installedOn"):
                        continue
                    if item.get("state") and str(item["state"]).upper() not in _APPLIED_STATES:
                        continue
                    description = str(item.get("description") or "").strip().replace(" ", "_")
                    name = "_".join(p for p in (str(item.get("version") or ""), description) if p) or \
                        str(item.get("script") or "?")
                    found.append(Migration(name, _parse_time(item["installedOn"]), _parse_bool(item.get("reversible"))))
        return tuple(found)
    return parse_migration_output(json.dumps(data))


def read_migration_url(url: str, timeout: float) -> tuple[Migration, ...]:
    """GET `url` (JSON) and parse it; DatabaseError with a sentence when it fails."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except httpx.TimeoutException:
        raise DatabaseError(f"GET {url} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as err:
        raise DatabaseError(f"GET {url} failed: {err}") from None
    if response.status_code != 200:
        raise DatabaseError(f"GET {url} answered HTTP {response.status_code}")
    try:
        return parse_migration_document(response.json())
    except ValueError:
        raise DatabaseError(f"GET {url} did not answer JSON") from None


def _newest_first(migrations: Sequence[Migration]) -> tuple[Migration, ...]:
    if all(m.applied_at is not None for m in migrations):
        return tuple(sorted(migrations, key=lambda m: m.applied_at, reverse=True))
    return tuple(migrations)


class Database:
    """One service's database, as its `database:` config describes it."""

    def __init__(self, service: str, config: DatabaseConfig, environ: Mapping[str, str] | None = None) -> None:
        self.service = service
        self.config = config
        self._environ = environ if environ is not None else os.environ

    # -- connection --------------------------------------------------------

    def dsn(self) -> str:
        """The DSN from the configured environment variable."""
        name = self.config.dsn_env
        if not name:
            raise DatabaseError(
                f"No database DSN is configured for {self.service}: set database.dsn_env in the config to the "
                "name of an environment variable holding it."
            )
        value = self._environ.get(name)
        if not value:
            raise DatabaseError(
                f"The environment variable {name} (database.dsn_env of {self.service}) is not set: export the "
                "database's DSN in it and start the console again."
            )
        return value

    @property
    def has_dsn(self) -> bool:
        return bool(self.config.dsn_env and self._environ.get(self.config.dsn_env))

    def _params(self) -> dict[str, str]:
        return parse_dsn(self.dsn()) if self.has_dsn else {}

    def secrets(self) -> tuple[str, ...]:
        """Values masked in everything shown: the DSN and its password."""
        if not self.has_dsn:
            return ()
        dsn = self.dsn()
        password = parse_dsn(dsn).get("password", "")
        return tuple(s for s in (dsn, password) if s)

    @property
    def name(self) -> str:
        """The database's name, for confirmations ("orders")."""
        params = self._params()
        return params.get("dbname") or params.get("user") or self._environ.get("PGDATABASE") or "(default database)"

    def describe(self) -> str:
        """"database orders on 127.0.0.1:5432 as app" (never the password)."""
        params = self._params()
        where = params.get("host", "localhost") + (f":{params['port']}" if params.get("port") else "")
        user = f" as {params['user']}" if params.get("user") else ""
        return f"database {self.name} on {where}{user}"

    def command_env(self) -> dict[str, str]:
        """The environment commands run in: the console's, plus the DSN as PG* variables."""
        env = dict(self._environ)
        if self.has_dsn:
            env.update(pg_environment(self.dsn()))
        return env

    def run(self, argv: Sequence[str], timeout: float | None = None) -> CommandResult:
        """Run a command with the database's environment and the configured timeout."""
        return run_command(argv, timeout=timeout or self.config.timeout, env=self.command_env(), secrets=self.secrets())

    # -- argv builders (shown before they run) ----------------------------

    def query_argv(self, sql: str) -> list[str]:
        """`psql -c SQL` with CSV output and errors that stop it."""
        return [pg_binary("psql"), "-X", "-q", "--csv", "-v", "ON_ERROR_STOP=1", "-c", sql]

    def script_argv(self, path: str) -> list[str]:
        """`psql -f PATH` in one transaction: a failing fix changes nothing."""
        return [pg_binary("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", path]

    def restore_argv(self, dump: str) -> list[str]:
        """`pg_restore --clean` of a custom-format dump into this database, in one transaction."""
        return [
            pg_binary("pg_restore"), "--clean", "--if-exists", "--no-owner", "--exit-on-error",
            "--single-transaction", "--dbname", self.name, dump,
        ]

    def call(self, argv: Sequence[str]) -> ApiCall:
        """A command as the plan shows it."""
        return ApiCall("exec", show(argv, self.secrets()))

    # -- operations --------------------------------------------------------

    def query(self, sql: str, timeout: float | None = None) -> QueryResult:
        """Run one query; raises DatabaseError with the reason when it fails."""
        argv = self.query_argv(sql)
        result = self.run(argv, timeout)
        if not result.ok:
            raise DatabaseError(f"The query against {self.describe()} failed: {result.failure()}")
        rows = [tuple(row) for row in csv.reader(io.StringIO(result.stdout)) if row]
        if not rows:
            return QueryResult((), (), result.command)
        return QueryResult(rows[0], tuple(rows[1:]), result.command)

    def migration_state(self, now: datetime | None = None) -> MigrationState:
        """The applied migrations, newest first; never raises (the error is in the state)."""
        status = self.config.migration_status
        if status is None:
            return MigrationState(error=f"No migration status is configured for {self.service}.", checked_at=now)
        try:
            if status.sql is not None:
                answer = self.query(status.sql, timeout=min(self.config.timeout, MIGRATION_STATUS_TIMEOUT))
                found = [
                    Migration(row[0], _parse_time(row[1]) if len(row) > 1 else None,
                              _parse_bool(row[2]) if len(row) > 2 else None)
                    for row in answer.rows
                    if row and row[0]
                ]
                source = answer.command
            elif status.url is not None:
                found = list(read_migration_url(status.url, min(self.config.timeout, MIGRATION_STATUS_TIMEOUT)))
                source = f"GET {status.url}"
            else:
                result = self.run(status.command, timeout=min(self.config.timeout, MIGRATION_STATUS_TIMEOUT))
                if not result.ok:
                    raise DatabaseError(f"The migration status command failed: {result.failure()}")
                found = list(parse_migration_output(result.stdout))
                source = result.command
        except DatabaseError as err:
            return MigrationState(error=f"Cannot read the migration state of {self.service}: {err}", checked_at=now)
        marked = [procedures.with_reversibility(m, self.config.reversible) for m in found]
        return MigrationState(_newest_first(marked), source, now)

    def verify_call(self) -> ApiCall:
        check = self._verify_config()
        return self.call(check.command if check.command is not None else self.query_argv(check.sql or ""))

    def _verify_config(self):
        if self.config.verify is None:
            raise DatabaseError(
                f"No data integrity check is configured for {self.service}: set database.verify "
                "(a command or a SQL query) in the config."
            )
        return self.config.verify

    def verify(self) -> Verification:
        """The data integrity check (the runbook's `npm run db:verify`)."""
        check = self._verify_config()
        if check.command is not None:
            result = self.run(check.command)
            summary = "exit status 0" if result.ok else result.failure()
            return Verification(result.ok, summary, result.output, result.command)
        try:
            answer = self.query(check.sql or "")
        except DatabaseError as err:
            return Verification(False, str(err), "", show(self.query_argv(check.sql or ""), self.secrets()))
        summary = answer.summary() + ("" if answer.finds_nothing else ": the check found bad data")
        return Verification(answer.finds_nothing, summary, answer.text, answer.command)

    def backups(self) -> list[Backup]:
        """The dumps in the configured backups folder, newest first."""
        config = self.config.backups
        if config is None:
            return []
        found = []
        for path in globbing.glob(os.path.join(config.dir, config.glob)):
            try:
                stat = os.stat(path)
            except OSError:
                continue
            found.append(Backup(path, stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc)))
        found.sort(key=lambda b: b.modified, reverse=True)
        return found


# --- running the procedures ------------------------------------------------------------------


@dataclass(frozen=True)
class StepPreview:
    """A step as it is shown before it runs."""

    step: StepState
    calls: tuple[ApiCall, ...]
    # The question to confirm ("" for a step that changes nothing).
    confirmation: str
    # Why it cannot run now, when it cannot.
    blocked: str | None = None


@dataclass(frozen=True)
class StepOutcome:
    """What running (or skipping) a step did, and where the procedure is now."""

    step: str
    ok: bool
    summary: str
    output: str
    state: ProcedureState


class _Runner:
    """What both procedures share: state from the timeline, recording, skipping."""

    procedure: str

    def __init__(self, session: Session, service: str) -> None:
        self.session = session
        self.service = service
        self._lock = threading.Lock()

    @property
    def title(self) -> str:
        return procedures.TITLES[self.procedure]

    def _events(self) -> list[Event]:
        return self.session.events(self.service)

    def state(self) -> ProcedureState:
        """The procedure's state, folded from the incident timeline."""
        return procedures.fold(self.procedure, self._events())

    def _record(self, event: incidents.NewEvent, actor: str | None = None) -> Event:
        return self.session.record(event, service=self.service, actor=actor)

    def _escalate(self, why: str) -> None:
        incident_id = self.session.incident_id(self.service)
        state = incidents.rebuild(incident_id, self._events())
        if state.escalated_to < procedures.ESCALATION_LEVEL:
            self._record(incidents.escalated(procedures.ESCALATION_LEVEL, why), actor="console")

    def preview(self, step_id: str, choice: str | None = None) -> StepPreview:
        """What the step will do, shown before it runs; changes nothing."""
        state = self.state()
        step = state.step(step_id)
        try:
            procedures.check_run(state, step_id)
            blocked = None
        except ProcedureError as err:
            blocked = str(err)
        try:
            calls, confirmation = self._plan(step, choice)
        except (DatabaseError, PlatformError, ProcedureError) as err:
            return StepPreview(step, (), "", blocked or str(err))
        return StepPreview(step, calls, confirmation, blocked)

    def skip(self, step_id: str, reason: str) -> StepOutcome:
        """Skip a step with a reason (recorded); never silently."""
        with self._lock:
            step = procedures.check_skip(self.state(), step_id, reason)
            self._record(incidents.step_skipped(self.procedure, step_id, step.label, reason))
            self._on_skip(step)
            return StepOutcome(step_id, True, f"skipped: {reason.strip()}", "", self.state())

    def _on_skip(self, step: StepState) -> None:
        """Hook for procedures that escalate when they start."""

    def run(self, step_id: str, choice: str | None = None,
            on_progress: Callable[[str], None] | None = None) -> StepOutcome:
        """Run one step: recorded before it runs, its output recorded after;
        a failure is recorded and leaves the procedure at this step."""
        with self._lock:
            state = self.state()
            step = procedures.check_run(state, step_id)
            calls, _ = self._plan(step, choice)
            self._record(incidents.step_started(self.procedure, step_id, step.label, [c.target for c in calls],
                                                choice or ""))
            self._on_start(step)
            try:
                ok, summary, output = self._execute(step, choice, on_progress or (lambda _: None))
            except (DatabaseError, PlatformError, ProcedureError) as err:
                ok, summary, output = False, str(err), ""
            if ok:
                self._record(incidents.step_done(self.procedure, step_id, step.label, summary, output), actor="console")
            else:
                self._record(incidents.step_failed(self.procedure, step_id, step.label, summary, output),
                             actor="console")
                self._on_failure(step, summary)
            return StepOutcome(step_id, ok, summary, output, self.state())

    def _on_start(self, step: StepState) -> None:
        """Hook: something to record when a step starts."""

    def _on_failure(self, step: StepState, error: str) -> None:
        """Hook: something to record when a step fails."""

    def _plan(self, step: StepState, choice: str | None) -> tuple[tuple[ApiCall, ...], str]:
        raise ProcedureError(f"{self.title} has no step {step.id!r}.")

    def _execute(self, step: StepState, choice: str | None, progress: Callable[[str], None]) -> tuple[bool, str, str]:
        raise ProcedureError(f"{self.title} has no step {step.id!r}.")

    # -- shared steps ------------------------------------------------------

    def _database(self) -> Database:
        return self.session.database(self.service)

    def _verify(self) -> tuple[bool, str, str]:
        verdict = self._database().verify()
        return verdict.ok, verdict.summary, verdict.output


def _scale_call(platform: Any, replicas: int) -> ApiCall:
    if isinstance(platform, Scalable):
        return platform.scale_call(replicas, platform.replicas())
    return ApiCall("scale", f"{platform.name} to {replicas} replicas")


def wait_for_ready(platform: Any, replicas: int, clock: Any, timeout: float) -> int:
    """Wait (on the platform's clock) until `replicas` pods are ready, or none
    are when `replicas` is 0; returns the ready count. Raises PlatformError on timeout."""
    deadline = clock.now() + timedelta(seconds=timeout)
    while True:
        health = platform.health()
        ready = health.ready or 0
        if (replicas == 0 and ready == 0) or (replicas > 0 and ready >= replicas):
            return ready
        if clock.now() >= deadline:
            raise PlatformError(
                f"{platform.name} has {ready} ready pods, not {replicas}, after {timeout:g} s; check the pods "
                f"(`kubectl get pods -l app={platform.name}`) and run the step again."
            )
        time.sleep(POLL_INTERVAL_SECONDS)


class CorruptionResponse(_Runner):
    """The runbook's Data Corruption Response for one service."""

    procedure = DATA_CORRUPTION

    def _on_start(self, step: StepState) -> None:
        # Running the response is declaring the corruption: the decision framework and the escalation follow it.
        if not self.session.facts(self.service).data_corruption:
            self.session.declare(self.service, "data_corruption", True)
        self._escalate("Data issue: data corruption response started")

    def _on_skip(self, step: StepState) -> None:
        self._on_start(step)

    def backups(self) -> list[Backup]:
        """Dumps the restore step can use, newest first."""
        return self._database().backups()

    def _plan(self, step: StepState, choice: str | None) -> tuple[tuple[ApiCall, ...], str]:
        platform = self.session.platform(self.service)
        if step.id == "freeze":
            return (_scale_call(platform, 0),), (
                f"Scale {self.service} to 0 replicas? Every write stops until step 6 resumes the service "
                "at its current replica count."
            )
        if step.id == "resume":
            replicas = self.state().frozen_replicas
            if replicas is None:
                return (), ""
            return (_scale_call(platform, replicas),), f"Scale {self.service} back to {replicas} replicas? Writes resume."
        db = self._database()
        if step.id == "assess":
            if not db.config.assess_sql:
                raise DatabaseError(f"No damage assessment query is configured for {self.service}: set database.assess_sql.")
            return (db.call(db.query_argv(db.config.assess_sql)),), ""
        if step.id == "restore":
            dump = self._dump(choice)
            return (db.call(db.restore_argv(dump)),), (
                f"Restore {db.describe()} from {dump}? pg_restore --clean drops and recreates every object in "
                "the dump: rows written since that backup are lost."
            )
        if step.id == "fix":
            script = db.config.fix_script
            if not script:
                raise DatabaseError(f"No data fix script is configured for {self.service}: set database.fix_script.")
            return (db.call(db.script_argv(script)),), f"Run the data fix script {script} against {db.describe()} (in one transaction)?"
        if step.id == "verify":
            return (db.verify_call(),), ""
        return super()._plan(step, choice)

    def _dump(self, choice: str | None) -> str:
        if not choice:
            raise ProcedureError("Choose the backup to restore (a dump taken before the deploy).")
        if not os.path.isfile(choice):
            raise DatabaseError(f"The backup {choice} does not exist or is not a file; choose another one.")
        return choice

    def _execute(self, step: StepState, choice: str | None, progress: Callable[[str], None]) -> tuple[bool, str, str]:
        platform = self.session.platform(self.service)
        clock = self.session.clock
        if step.id == "freeze":
            scale = _scaler(platform)
            before = scale(0)
            remembered = self.state().frozen_replicas
            if remembered is None:
                # Remember the count first: a crash now still knows what to restore.
                self._record(incidents.writes_frozen(before), actor="console")
                remembered = before
            progress(f"Scaled {self.service} to 0 (was {before}); waiting for the pods to stop")
            wait_for_ready(platform, 0, clock, self._database_timeout())
            return True, f"writes stopped: 0 pods ready; {remembered} replicas to restore", ""
        if step.id == "resume":
            replicas = self.state().frozen_replicas
            if replicas is None:
                return True, "writes were not frozen by the console; nothing to scale", ""
            _scaler(platform)(replicas)
            progress(f"Scaled {self.service} to {replicas}; waiting for the pods to be ready")
            ready = wait_for_ready(platform, replicas, clock, self._database_timeout())
            self._record(incidents.writes_resumed(replicas), actor="console")
            return True, f"{ready} of {replicas} pods ready", ""
        db = self._database()
        if step.id == "assess":
            answer = db.query(db.config.assess_sql or "")
            return True, answer.summary(), answer.text
        if step.id == "restore":
            result = db.run(db.restore_argv(self._dump(choice)), timeout=db.config.restore_timeout)
            if not result.ok:
                return False, f"The restore failed: {result.failure()}", result.output
            return True, f"restored {db.name} from {Path(choice or '').name} in {result.seconds:.1f} s", result.output
        if step.id == "fix":
            result = db.run(db.script_argv(db.config.fix_script or ""))
            if not result.ok:
                return False, f"The data fix script failed (nothing was changed): {result.failure()}", result.output
            return True, f"fix script ran in {result.seconds:.1f} s", result.output
        if step.id == "verify":
            return self._verify()
        return super()._execute(step, choice, progress)

    def _database_timeout(self) -> float:
        service = self.session.config.service(self.service)
        return service.database.timeout if service.database else 120.0


def _scaler(platform: Any) -> Callable[[int], int]:
    if not isinstance(platform, Scalable):
        raise PlatformError(f"{lacks(platform, Scalable)[:-1]}: stop writes by hand and skip this step with a reason.")
    return platform.scale


class MigrationRollback(_Runner):
    """The runbook's "When Migration is Reversible": application, then migration, then integrity."""

    procedure = MIGRATION_ROLLBACK

    def __init__(self, session: Session, service: str, to_revision: int | None = None, ask=None) -> None:
        super().__init__(session, service)
        self.to_revision = to_revision
        # The operator's ask (a `gate.Ask`, with an override when one was given): the gate is asked again
        # before the application step runs, which may be long after the plan was shown.
        self.ask = ask
        self._planned: RollbackPlan | None = None

    def _on_failure(self, step: StepState, error: str) -> None:
        self._escalate(f"Migration rollback stopped at step {step.label}: {error}")

    def _app_plan(self) -> RollbackPlan:
        if self._planned is None:
            self._planned = self.session.plan_rollback(self.service, self.to_revision)
        return self._planned

    def _plan(self, step: StepState, choice: str | None) -> tuple[tuple[ApiCall, ...], str]:
        if step.id == "app_rollback":
            plan = self._app_plan()
            if plan.skip_reason:
                return (), ""
            frm, to = ", ".join(plan.from_versions), ", ".join(plan.to_versions)
            return plan.calls, (
                f"Roll back the application {self.service} from {frm} (revision {plan.from_revision}) to {to} "
                f"(revision {plan.to_revision})? The migration is rolled back next."
            )
        db = self._database()
        if step.id == "migration_rollback":
            if db.config.migration_rollback is None:
                raise DatabaseError(
                    f"No migration rollback command is configured for {self.service}: set database.migration_rollback."
                )
            names = self.session.migration_facts(self.service).migration_name or "the migration"
            return (db.call(db.config.migration_rollback),), f"Roll back {names}?"
        if step.id == "integrity_check":
            return (db.verify_call(),), ""
        return super()._plan(step, choice)

    def _execute(self, step: StepState, choice: str | None, progress: Callable[[str], None]) -> tuple[bool, str, str]:
        if step.id == "app_rollback":
            from console.gate import Ask, Outcome

            plan = self._app_plan()
            self._planned = None  # a retry plans again against the state then
            ask = self.ask or Ask(self.session.operator, self.to_revision)
            verdict = self.session.gate(plan, ask)
            if verdict.outcome is Outcome.NOTHING:
                return True, verdict.sentence, ""
            if verdict.outcome is not Outcome.GO:
                self.session.record_verdict(plan, verdict, ask)
                return False, f"The gate refuses the application rollback: {verdict.sentence}", ""
            last: Progress | None = None
            try:
                for last in self.session.execute(plan, reason="roll back the application before its migration"):
                    progress(last.message)
                    if last.failed:
                        return False, last.message, ""
            except PlatformError as err:
                return False, str(err), ""
            return True, last.message if last else "rolled back", ""
        if step.id == "migration_rollback":
            db = self._database()
            result = db.run(db.config.migration_rollback or [])
            if not result.ok:
                return False, f"The migration rollback failed: {result.failure()}", result.output
            return True, f"migration rolled back in {result.seconds:.1f} s", result.output
        if step.id == "integrity_check":
            return self._verify()
        return super()._execute(step, choice, progress)

    def run_all(self, confirm: Callable[[StepPreview], bool] | None = None,
                out: Callable[[str], None] = lambda _: None) -> StepOutcome | None:
        """Run the remaining steps in order, each shown (and confirmed, when
        `confirm` is given) before it runs; stops at the first failure or refusal.
        Returns the last outcome (None when nothing ran)."""
        outcome = None
        first = True
        while True:
            state = self.state()
            current = state.current
            if current is None:
                if not (first and state.finished):
                    break
                current = state.steps[0]  # a finished plan runs again from the start
            first = False
            preview = self.preview(current.id)
            out(f"Step {current.label}")
            for call in preview.calls:
                out(f"  {call}")
            if preview.blocked:
                out(f"  cannot run: {preview.blocked}")
                return outcome
            if confirm is not None and preview.confirmation and not confirm(preview):
                out("  not confirmed: the plan stops here (run it again to continue).")
                return outcome
            outcome = self.run(current.id, on_progress=lambda line: out(f"  {line}"))
            out(f"  {'done' if outcome.ok else 'FAILED'}: {outcome.summary}")
            for line in outcome.output.splitlines()[-20:]:
                out(f"    {line}")
            if not outcome.ok:
                return outcome
        return outcome


def check_rollback(session: Session, service: str, to_revision: int | None = None) -> procedures.RollbackCheck:
    """Would rolling `service` back to `to_revision` (default: the previous
    revision) cross a migration that cannot be undone? From the migration state
    and history of the last refresh; not blocked when the service has no
    migration status source (the decision framework's facts still apply).

    Fails closed: when the status source is configured but its state could not
    be read (or was not read yet), the rollback is blocked with the reason, as
    an irreversible migration would be; `--force` (the UI's "roll back anyway")
    is the way past it once the operator has checked."""
    try:
        db = session.database(service).config
    except DatabaseError:
        return procedures.RollbackCheck(False)
    if db.migration_status is None:
        return procedures.RollbackCheck(False)
    view = session.view(service)
    state = session.migrations(service)
    hotfix, feature_flag = remedy(db.hotfix), remedy(db.feature_flag)
    if view is None or state is None:
        return procedures.unknown_state_check(
            f"The migration state of {service} has not been read yet (no refresh has completed)", hotfix, feature_flag)
    if state.error:
        return procedures.unknown_state_check(state.error, hotfix, feature_flag)
    history = view.snapshot.history
    since = procedures.migrations_since_deploy(state.migrations, history)
    return procedures.check_rollback(
        procedures.rollback_target(history, to_revision), since, db.schema_requirements, history,
        hotfix=hotfix, feature_flag=feature_flag,
    )


def remedy(config: CommandOrLink | None) -> procedures.Remedy | None:
    """A configured hotfix or feature flag as the procedures module takes it."""
    if config is None:
        return None
    return procedures.Remedy(tuple(config.command or ()), config.url)
