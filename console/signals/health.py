"""The runbook's step 5, "Verify service responding":

    curl -s https://api.example.com/health | jq -r .status   # == "healthy"

Every failure is an answer, not an exception: a timeout or a refused
connection means the service is down, with a short status saying why.

The check runs once per service per refresh cycle, so its per-request cost
is what a 500-service cycle pays 500 times: it uses aiohttp, which on this
machine costs about 0.1 ms of CPU per check where httpx costs 1-3 ms
(bench/health_clients.py: 500 checks in 0.05 s against 0.6-1.5 s).
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from console.platforms.bounded import read_capped
from console.signals import HEALTH_TIMEOUT, tls

MAX_BODY_BYTES = 1024 * 1024
"""The most a health endpoint's answer may weigh; a bigger one fails the check."""

if TYPE_CHECKING:
    import aiohttp


class EndpointCheck(NamedTuple):
    """One health check: healthy or not, why, and how long it took."""

    ok: bool
    # "healthy", "HTTP 503", "timeout after 2.0 s", "connection refused" ...
    status: str
    # None when no answer arrived (timeout, connection error).
    latency_ms: float | None


def connection_problem(exc: BaseException) -> str:
    """A short phrase for why a connection failed, from the OS error that
    the HTTP client wraps ("All connection attempts failed" says nothing)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "host name does not resolve"
        if isinstance(current, ssl.SSLError):
            return "TLS handshake failed"
        if isinstance(current, (TimeoutError, socket.timeout)):
            return "connection timed out"
        if isinstance(current, OSError) and current.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "host unreachable"
        current = current.__cause__ or current.__context__
    return "cannot connect"


def _lookup(document: Any, json_path: str) -> Any:
    """jq's `.a.b` on a parsed JSON document; KeyError when missing."""
    current = document
    for part in json_path.strip().lstrip(".").split("."):
        if not part:
            continue
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise KeyError(part)
    return current


def new_session(max_connections: int, environment_proxies: bool = True) -> aiohttp.ClientSession:
    """The pooled keep-alive client health checks share (call inside the event
    loop that will use it): at most `max_connections` open connections, the
    environment's proxy settings honoured (unless `environment_proxies` is
    False: the poller's session for the Kubernetes API, which the kubeconfig
    routes), no cookies kept between checks."""
    import aiohttp

    proxied = False
    if environment_proxies:
        import urllib.request

        # Honouring the environment looks the proxy variables up on every request,
        # which doubles a check's cost: only pay it when a proxy is configured.
        proxied = bool(urllib.request.getproxies())
    connector = aiohttp.TCPConnector(limit=max_connections)
    return aiohttp.ClientSession(connector=connector, trust_env=proxied, cookie_jar=aiohttp.DummyCookieJar())


async def check(
    session: aiohttp.ClientSession,
    url: str,
    timeout: float = HEALTH_TIMEOUT,
    json_path: str = "status",
    healthy_value: str = "healthy",
) -> EndpointCheck:
    """GET the health URL; healthy when it answers 2xx with JSON whose
    `json_path` equals `healthy_value`. Never raises for network trouble.
    Redirects are not followed (a health check that redirects is misconfigured)."""
    import aiohttp

    started = time.perf_counter()
    try:
        # The whole exchange is bounded, not just each phase of it.
        async with asyncio.timeout(timeout):
            async with session.get(url, headers={"Accept": "application/json"}, allow_redirects=False,
                                   ssl=tls.for_url(url)) as response:
                status = response.status
                body = await read_capped(response.content, MAX_BODY_BYTES)
                if body is None:
                    return EndpointCheck(False, f"HTTP {status}, body larger than {MAX_BODY_BYTES // 1024} KiB", None)
    except TimeoutError:
        return EndpointCheck(False, f"timeout after {timeout:.1f} s", None)
    except aiohttp.ClientConnectorError as exc:
        return EndpointCheck(False, connection_problem(exc), None)
    except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a URL it cannot use
        return EndpointCheck(False, f"request failed ({type(exc).__name__})", None)
    latency_ms = (time.perf_counter() - started) * 1000.0
    if not 200 <= status < 300:
        return EndpointCheck(False, f"HTTP {status}", latency_ms)
    try:
        value = _lookup(json.loads(body), json_path)
    except (ValueError, RecursionError):
        return EndpointCheck(False, f"HTTP {status}, body is not JSON", latency_ms)
    except KeyError:
        return EndpointCheck(False, f'HTTP {status}, no ".{json_path.lstrip(".")}" in the body', latency_ms)
    if str(value) == healthy_value:
        return EndpointCheck(True, healthy_value, latency_ms)
    return EndpointCheck(False, str(value) if value is not None else "null", latency_ms)
