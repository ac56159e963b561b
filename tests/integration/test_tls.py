"""The refresh process imports aiohttp without its import-time CA loading
(console.signals.tls: 45 ms of the first cycle the first frame waits for):
its HTTPS health checks and Prometheus queries still verify the server, with
a context of the console's own, and fail closed without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support import https_server

CHILD = r"""
import asyncio, json, os, sys
from console.signals import tls
with tls.without_default_certs():
    import aiohttp, aiohttp.connector
from console.signals import health
from console.signals.prometheus import PrometheusClient

async def main(url):
    session = health.new_session(4)
    try:
        check = await health.check(session, url + "/health", timeout=5)
    finally:
        await session.close()
    async with PrometheusClient(url, timeout=5) as prometheus:
        try:
            samples = await prometheus.query("up")
            queried = f"ok {len(samples)}"
        except Exception as err:
            queried = f"{type(err).__name__}: {err}"
    print(json.dumps({
        "aiohttp_default_cas": aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"],
        "cert_file_after": os.environ.get("SSL_CERT_FILE"),
        "health": [check.ok, check.status],
        "query": queried,
    }))

asyncio.run(main(sys.argv[1]))
"""


def _answer(path: str) -> tuple[int, bytes]:
    if path.startswith("/health"):
        return 200, b'{"status": "healthy"}'
    return 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"service": "a"}, "value": [1, "1"]}]}}).encode()


@pytest.fixture
def https_url(tmp_path):
    with https_server(tmp_path, _answer) as served:
        yield served


def _child(url: str, cert_file: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    if cert_file:
        env["SSL_CERT_FILE"] = cert_file
    out = subprocess.run([sys.executable, "-c", CHILD, url], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_https_checks_verify_with_the_consoles_own_context(https_url):
    url, cert = https_url
    seen = _child(url, cert)  # the server's certificate is the CA OpenSSL is told to trust
    assert seen["aiohttp_default_cas"] == 0  # aiohttp's own contexts loaded nothing
    assert seen["cert_file_after"] == cert  # the environment is as it was
    assert seen["health"] == [True, "healthy"]
    assert seen["query"] == "ok 1"


def test_https_checks_fail_closed_against_an_untrusted_server(https_url):
    url, _ = https_url
    seen = _child(url, None)  # the system's CAs only: the self-signed server is not trusted
    assert seen["health"] == [False, "TLS handshake failed"]
    assert not seen["query"].startswith("ok")
