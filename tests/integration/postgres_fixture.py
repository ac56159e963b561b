"""A real PostgreSQL for the database tests: `initdb` into a temporary
directory and `pg_ctl` on a free port of 127.0.0.1, once per test session.
Connections over TCP need a password (scram-sha-256), so the console's DSN
handling is exercised for real. Registered once as a plugin by
tests/conftest.py (pytest does not collect this file as a conftest), so the
server starts once per run.

initdb refuses to run as root: as root, the server runs as the `postgres`
user (`runuser`) in a directory it owns. Missing binaries skip the tests
locally and fail them in CI (scripts/system-deps.sh installs them).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest_adapters import require

PASSWORD = "s3cret-Pa55word"
USER = "postgres"


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    for path in candidates + ([found] if found else []):
        folder = Path(path).resolve().parent
        if all((folder / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@dataclass
class Postgres:
    """A running server: connect as `postgres` with PASSWORD on 127.0.0.1:port."""

    bin_dir: Path
    port: int
    root: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def env(self, database: str = "postgres") -> dict[str, str]:
        """An environment in which psql & co connect to `database`."""
        return {
            **os.environ,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": USER,
            "PGPASSWORD": PASSWORD,
            "PGDATABASE": database,
            "PGCONNECT_TIMEOUT": "5",
        }

    def tool(self, name: str) -> str:
        path = self.bin_dir / name
        return str(path) if path.exists() else (shutil.which(name) or name)

    def psql(self, database: str, sql: str) -> str:
        """Run SQL as the superuser; returns the unaligned, tuples-only output."""
        done = subprocess.run(
            [self.tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            env=self.env(database), capture_output=True, text=True, timeout=30,
        )
        if done.returncode != 0:
            raise AssertionError(f"psql failed: {done.stderr}")
        return done.stdout.strip()

    def create_database(self) -> str:
        """A fresh, empty database; returns its name."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql("postgres", f"CREATE DATABASE {name}")
        return name

    def dump(self, database: str, path: Path) -> Path:
        """`pg_dump -Fc` of the database into `path` (the backup taken before the deploy)."""
        subprocess.run([self.tool("pg_dump"), "-Fc", "-f", str(path)], env=self.env(database), check=True,
                       capture_output=True, timeout=60)
        return path


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def start_postgres() -> tuple[Postgres, callable]:
    """Start a server; returns it and a function that stops it."""
    bin_dir = _bin_dir()
    require(bin_dir is not None, "PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    if os.geteuid() == 0:
        require(shutil.which("runuser") is not None, "runuser is missing (needed to run initdb as postgres)")
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            require(False, "there is no postgres user to run the server as")
            raise
    root = Path(tempfile.mkdtemp(prefix="rollback-pg-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, pwfile, log = root / "data", root / "pwfile", root / "server.log"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    subprocess.run(
        _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
                         "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True, timeout=120,
    )
    options = (f"-c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off")
    for attempt in range(3):
        port = _free_port()
        started = subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                             "-o", f"-p {port} {options}", "start"]),
            capture_output=True, timeout=90,
        )
        if started.returncode == 0:
            break
    else:
        raise AssertionError(f"PostgreSQL did not start: {log.read_text() if log.exists() else started.stderr!r}")

    def stop() -> None:
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    return Postgres(bin_dir, port, root), stop


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the whole test session."""
    server, stop = start_postgres()
    try:
        yield server
    finally:
        stop()


@pytest.fixture
def database(postgres: Postgres) -> str:
    """A fresh database on the session's server; returns its name."""
    return postgres.create_database()
