"""Helpers every test module shares (pyproject puts tests/ on the path).

A test that needs a component the machine lacks skips locally with the
reason and fails in CI (CI=true): a skipped integration test in CI is a red
build.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[1]
# shared/ lies beside the checkout, for developers and in CI alike.
RUNBOOK = REPO.parent / "shared" / "seed" / "rollback-procedures.md"


def require(condition: bool, reason: str) -> None:
    """Skip locally when a component is missing; in CI a missing component fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)  # locally only: under CI the line above fails instead


def require_binary(name: str, package: str | None = None) -> str:
    """The path of `name`, or skip/fail naming the Debian package that provides it."""
    path = shutil.which(name)
    hint = f" (Debian package {package}; scripts/system-deps.sh installs it)" if package else " (scripts/system-deps.sh installs it)"
    require(path is not None, f"{name} is not installed{hint}")
    return path  # type: ignore[return-value]


def kubectl(kubeconfig: Path, cache: Path, namespace: str, *args: str) -> str:
    """The real kubectl against a served drill (its kubeconfig), in `namespace`; its stdout (fails on an error)."""
    binary = require_binary("kubectl", "kubernetes-client")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    result = subprocess.run([binary, "--cache-dir", str(cache), "--request-timeout=10s", "-n", namespace, *args],
                            capture_output=True, text=True, timeout=90, env=env)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def runbook_text() -> str:
    """The runbook the console implements (skip/fail when shared/ is absent)."""
    require(RUNBOOK.exists(), f"the runbook {RUNBOOK} is not beside the checkout")
    return RUNBOOK.read_text(encoding="utf-8")


def drill_scenario(name: str, directory: Path):
    """A shipped scenario by name, or "gitops-flux-helm": gitops-flux with its
    owner a Flux HelmRelease, written as a scenario file of its own (as a user
    would write one) and loaded from it."""
    from console.drill.scenario import load_scenario

    if name != "gitops-flux-helm":
        return load_scenario(name)
    import yaml

    data = yaml.safe_load((REPO / "console/drill/scenarios/gitops-flux.yaml").read_text())
    data["name"] = name
    data["services"][0]["gitops"]["kind"] = "HelmRelease"
    data["services"][0]["gitops"].pop("path", None)
    path = directory / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_scenario(path)


@contextlib.contextmanager
def served_drill(*drill_args: str, timeout: float = 30.0) -> Iterator[list[str]]:
    """`rollback-console drill ... --serve-only` as a real subprocess, until it
    prints `ready`; yields its start-up lines, stops it with SIGTERM after and
    checks it exited cleanly."""
    process = subprocess.Popen(
        [sys.executable, "-m", "console", "drill", *drill_args, "--serve-only"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line.strip())
            if lines[-1] == "ready" or time.monotonic() > deadline:
                break
        assert lines and lines[-1] == "ready", (lines, process.stderr.read() if process.poll() is not None else "")
        yield lines
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, process.stderr.read()  # type: ignore[union-attr]


async def wait_for(pilot, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Let a Textual app run until `condition()` holds; fail naming `what` after `timeout` s.

    A query that finds no widget yet (a screen pushed but not composed) counts
    as "not yet", so a condition may reach into a screen that is still mounting.
    """
    from textual.css.query import NoMatches

    def holds() -> bool:
        try:
            return bool(condition())
        except NoMatches:
            return False

    deadline = time.monotonic() + timeout
    while not holds():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.05)


def wait_until(condition: Callable[[], T], what: str | Callable[[], str], timeout: float = 60.0,
               interval: float = 0.1) -> T:
    """Call `condition()` until it returns something true, and return that; fail naming
    `what` (a phrase, or a function giving one with what was last seen) after `timeout` s.

    The synchronous twin of `wait_for`, for what a test cannot be told about (another
    process, a server, a drill's clock): `interval` is the polling interval inside the
    deadline, not a synchronisation. An assertion raised by `condition` (the process
    under test exited) fails at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def self_signed_certificate(directory: Path) -> tuple[str, str]:
    """A throwaway certificate and key for 127.0.0.1 (PEM files); the
    certificate is its own CA (trust it to verify the server)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@contextlib.contextmanager
def https_server(
    directory: Path, answer: Callable[[str], tuple[int, bytes]], seen: list | None = None, client_ca: str | None = None,
) -> Iterator[tuple[str, str]]:
    """An HTTPS server on 127.0.0.1 (a throwaway certificate, written in
    `directory`) answering each GET with `answer(path)`: (status, JSON body).
    Yields its URL and the certificate (trust it to verify the server).
    `seen` gets each request's (path, headers); with `client_ca` the server
    asks for a client certificate issued by it and refuses connections without."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if seen is not None:
                seen.append((self.path, self.headers))
            status, body = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    cert, key = self_signed_certificate(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
