"""A service's database: a source. The migration state (a command, a SQL query or a URL), the damage
assessment, the integrity check, `pg_restore` and `psql -f`. Every command is
an argv list run without a shell, with a timeout; the DSN never appears on a
command line: it is read from the environment variable the config names and
handed to `psql`/`pg_restore` (and to the configured commands) as libpq's PG*
environment variables. Everything shown or recorded passes through
console/redact.py, and the DSN's password is masked even where no pattern
would catch it.

The guided procedures that drive a session with it (the data-corruption
response, the reversible-migration plan) live in console/runbook.py, beside
the gate.
"""

from __future__ import annotations

import csv
import glob as globbing
import io
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from console import commands, procedures
from console.commands import CommandResult, mask, show
from console.config import DatabaseConfig
from console.model import ApiCall
from console.procedures import Migration

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


_mask = mask  # the shared masking (console.commands)




def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    secrets: Sequence[str] = (),
) -> CommandResult:
    """The shared runner (`console.commands.run_command`) for database commands."""
    return commands.run_command(argv, timeout=timeout, env=env, cwd=cwd, secrets=secrets,
                                what="check the database and try again")


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
                "database's DSN in it and run again. Nothing ran: the console never falls back to another "
                "database (libpq's defaults, PGHOST, PGDATABASE) when the one the config names is unknown."
            )
        return value

    def require_dsn(self, what: str) -> None:
        """A destructive step (`what`: "restore", "run the fix script") runs only
        against the database the config names: DatabaseError otherwise."""
        if not self.config.dsn_env:
            raise DatabaseError(
                f"Refusing to {what} for {self.service}: no database is named in the config. Set "
                "database.dsn_env to an environment variable holding its DSN; the console does not "
                "change whatever database libpq's defaults or PG* variables happen to point at."
            )
        self.dsn()

    @property
    def has_dsn(self) -> bool:
        return bool(self.config.dsn_env and self._environ.get(self.config.dsn_env))

    @property
    def _named_but_unset(self) -> bool:
        return bool(self.config.dsn_env) and not self.has_dsn

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
        if self._named_but_unset:
            return f"(unknown: {self.config.dsn_env} is not set)"
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
        if self.config.dsn_env:
            env.update(pg_environment(self.dsn()))  # unset: DatabaseError, nothing runs against another database
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
