"""The runbook's step 5, "Verify service responding":

    curl -s https://api.example.com/health | jq -r .status   # == "healthy"

Every failure is an answer, not an exception: a timeout or a refused
connection means the service is down, with a short status saying why.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from typing import Any, NamedTuple

import httpx


class EndpointCheck(NamedTuple):
    """One health check: healthy or not, why, and how long it took."""

    ok: bool
    # "healthy", "HTTP 503", "timeout after 2.0 s", "connection refused" ...
    status: str
    # None when no answer arrived (timeout, connection error).
    latency_ms: float | None


def connection_problem(exc: BaseException) -> str:
    """A short phrase for why a connection failed, from the OS error that
    httpx wraps ("All connection attempts failed" says nothing)."""
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


async def check(
    client: httpx.AsyncClient,
    url: str,
    timeout: float = 2.0,
    json_path: str = "status",
    healthy_value: str = "healthy",
) -> EndpointCheck:
    """GET the health URL; healthy when it answers 2xx with JSON whose
    `json_path` equals `healthy_value`. Never raises for network trouble."""
    started = time.perf_counter()
    try:
        # The whole exchange is bounded, not just each phase of it.
        async with asyncio.timeout(timeout):
            response = await client.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except (TimeoutError, httpx.TimeoutException):
        return EndpointCheck(False, f"timeout after {timeout:.1f} s", None)
    except httpx.ConnectError as exc:
        return EndpointCheck(False, connection_problem(exc), None)
    except httpx.HTTPError as exc:
        return EndpointCheck(False, f"request failed ({type(exc).__name__})", None)
    latency_ms = (time.perf_counter() - started) * 1000.0
    if not response.is_success:
        return EndpointCheck(False, f"HTTP {response.status_code}", latency_ms)
    try:
        value = _lookup(response.json(), json_path)
    except ValueError:
        return EndpointCheck(False, f"HTTP {response.status_code}, body is not JSON", latency_ms)
    except KeyError:
        return EndpointCheck(False, f'HTTP {response.status_code}, no ".{json_path.lstrip(".")}" in the body', latency_ms)
    if str(value) == healthy_value:
        return EndpointCheck(True, healthy_value, latency_ms)
    return EndpointCheck(False, str(value) if value is not None else "null", latency_ms)
