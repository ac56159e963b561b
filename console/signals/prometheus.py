"""The Prometheus HTTP query API (/api/v1/query, /api/v1/query_range).

One shared aiohttp `ClientSession` per PrometheusClient, sized for many
services refreshed concurrently (the same HTTP client as the health checks:
the refresh process loads one HTTP library, not two). Failures raise
`SignalError` whose text is an operator sentence; credentials never appear in it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from array import array
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from console.model import Samples
from console.platforms.bounded import read_capped
from console.signals import QUERY_TIMEOUT, tls
from console.signals.health import connection_problem

if TYPE_CHECKING:
    import aiohttp

# Enough parallel connections for a refresh of every service at once; the
# rest wait in the pool (the wait counts against the query's timeout).
MAX_CONNECTIONS = 32
MAX_KEEPALIVE = 16
# Longer queries go in a POST form body: URLs beyond ~8 KB are refused by proxies.
MAX_GET_QUERY_CHARS = 2000
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The most one query answer may weigh; a bigger one is refused, not read into memory."""


class SignalError(Exception):
    """A signal could not be read; `str(err)` says why and what to do."""


class QueryRejected(SignalError):
    """Prometheus refused the query itself (HTTP 400/422 bad_data): retrying
    will not help, the query (or the server's dialect) is the problem."""


class Sample(NamedTuple):
    """One series of an instant query. `value` is None for NaN (no data, e.g.
    0/0 in a ratio); +Inf/-Inf stay floats."""

    labels: dict[str, str]
    value: float | None
    at: datetime


class Series(NamedTuple):
    """One series of a range query; NaN samples are left out."""

    labels: dict[str, str]
    points: Samples


def redact_url(url: str) -> str:
    """The URL without user:password, query string or fragment (for messages)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _parse_value(raw: Any) -> float | None:
    value = float(raw)
    return None if math.isnan(value) else value


@functools.lru_cache(maxsize=4096)
def _at(timestamp: Any) -> datetime:
    return datetime.fromtimestamp(float(timestamp), tz=timezone.utc)


def _epoch(timestamp: Any) -> float:
    """A sample time as `Samples` keeps it: seconds, rounded to the microsecond as
    a datetime would be, so the same time read by an instant query compares equal."""
    seconds = float(timestamp)
    if not math.isfinite(seconds):
        raise ValueError(f"sample time {timestamp!r}")
    return round(seconds * 1_000_000) / 1_000_000


def _format_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("Prometheus query times must be timezone-aware")
    return f"{at.timestamp():.3f}"


class PrometheusClient:
    """Instant and range queries against one Prometheus (or compatible) server."""

    def __init__(
        self,
        url: str,
        timeout: float = QUERY_TIMEOUT,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        verify: bool | str = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._display_url = redact_url(self.url)
        self._headers = {"Accept": "application/json"}
        if bearer_token:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        self._basic_auth = basic_auth
        self._verify = verify
        self._client: aiohttp.ClientSession | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"PrometheusClient({self._display_url!r}, timeout={self.timeout})"

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use so it binds to the event loop that uses it (a
        # client of another loop's is left to that loop).
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.closed:
            if self._verify is False:
                ssl: Any = False
            elif isinstance(self._verify, str):
                import ssl as ssl_module

                ssl = ssl_module.create_default_context(cafile=self._verify)
            else:
                ssl = tls.for_url(self.url)
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=MAX_CONNECTIONS, ssl=ssl),
                headers=self._headers,
                auth=aiohttp.BasicAuth(*self._basic_auth) if self._basic_auth else None,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the shared connection pool."""
        if self._client is not None:
            if self._client_loop is asyncio.get_running_loop():
                await self._client.close()
            self._client = None

    async def __aenter__(self) -> PrometheusClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def query(self, promql: str, at: datetime | None = None) -> list[Sample]:
        """An instant query: one Sample per series (a scalar result is one
        Sample with no labels)."""
        params = {"query": promql, "timeout": f"{self.timeout:g}s"}
        if at is not None:
            params["time"] = _format_time(at)
        data = await self._request("query", params, promql)
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "vector":
                return [
                    Sample(dict(item.get("metric") or {}), _parse_value(item["value"][1]), _at(item["value"][0]))
                    for item in result or []
                ]
            if kind == "scalar":
                return [Sample({}, _parse_value(result[1]), _at(result[0]))]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError, OSError):
            raise self._malformed(promql) from None
        if kind == "matrix":
            raise SignalError(
                f"The query `{promql}` returns a range of samples, not one value per series; "
                "wrap the range selector in a function such as rate() or last_over_time()."
            )
        raise SignalError(
            f"The query `{promql}` returns a {kind or 'missing'} result, not numbers; "
            "check the query in the console config."
        )

    async def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta | float
    ) -> list[Series]:
        """A range query from start to end every step (seconds or timedelta)."""
        seconds = step.total_seconds() if isinstance(step, timedelta) else float(step)
        params = {
            "query": promql,
            "start": _format_time(start),
            "end": _format_time(end),
            "step": f"{seconds:g}",
            "timeout": f"{self.timeout:g}s",
        }
        data = await self._request("query_range", params, promql)
        if data.get("resultType") != "matrix":
            raise self._malformed(promql)
        series = []
        try:
            for item in data.get("result") or []:
                times, values = array("d"), array("d")
                for timestamp, raw in item.get("values") or []:
                    value = _parse_value(raw)
                    if value is not None:
                        times.append(_epoch(timestamp))
                        values.append(value)
                if any(b <= a for a, b in zip(times, times[1:])):  # Prometheus sorts them; another API may not
                    ordered = sorted(dict(zip(times, values)).items())
                    times, values = array("d", (t for t, _ in ordered)), array("d", (v for _, v in ordered))
                series.append(Series(dict(item.get("metric") or {}), Samples(times, values)))
        except (TypeError, ValueError, AttributeError, OverflowError, OSError):
            raise self._malformed(promql) from None
        return series

    def _malformed(self, promql: str) -> SignalError:
        return SignalError(
            f"Prometheus at {self._display_url} answered the query `{promql}` in an unexpected "
            "shape; check that the URL points at a Prometheus-compatible query API."
        )

    async def _request(self, endpoint: str, params: dict[str, str], promql: str) -> dict:
        import aiohttp

        path = f"{self.url}/api/v1/{endpoint}"
        client = self._http()
        try:
            # One bound for the whole exchange, the wait for a pooled connection included.
            async with asyncio.timeout(self.timeout):
                if len(promql) > MAX_GET_QUERY_CHARS:
                    request = client.post(path, data=params, allow_redirects=False)
                else:
                    request = client.get(path, params=params, allow_redirects=False)
                async with request as response:
                    status, content_type = response.status, response.headers.get("content-type")
                    body = await read_capped(response.content, MAX_RESPONSE_BYTES)
                    if body is None:
                        raise SignalError(
                            f"Prometheus at {self._display_url} answered the query `{promql}` with more "
                            f"than {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB; the answer was refused. Check "
                            "the query (it should select one series per service) and the URL."
                        )
        except TimeoutError:
            raise SignalError(
                f"Prometheus at {self._display_url} did not answer within {self.timeout:.1f} s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            reason = connection_problem(exc)
            raise SignalError(
                f"Cannot reach Prometheus at {self._display_url}: {reason}. "
                "Check the Prometheus URL in the config and the network (VPN)."
            ) from None
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a URL it cannot use
            raise SignalError(
                f"The request to Prometheus at {self._display_url} failed "
                f"({type(exc).__name__}); check the URL and the network."
            ) from None
        return self._payload(status, content_type, body, promql)

    def _payload(self, status: int, content_type: str | None, raw: bytes, promql: str) -> dict:
        if status in (401, 403):
            raise SignalError(
                f"Prometheus at {self._display_url} refused the credentials (HTTP {status}); "
                "check the token or basic-auth settings in the config."
            )
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            body = None
        # Prometheus answers errors with errorType; anything else (a Kubernetes
        # Status, a proxy's page) means the URL points somewhere else.
        if not isinstance(body, dict) or not (
            body.get("status") == "success" or (body.get("status") == "error" and "errorType" in body)
        ):
            kind = (content_type or "no content type").split(";")[0]
            raise SignalError(
                f"Prometheus at {self._display_url} answered HTTP {status} with {kind}, not the "
                "query API; check the URL (it should end at Prometheus' base path, e.g. "
                "http://host:9090 or .../prometheus)."
            )
        if body.get("status") != "success":
            error = body.get("error") or "no reason given"
            if status in (400, 422):
                raise QueryRejected(f"Prometheus rejected the query `{promql}`: {error}")
            if status == 503 or body.get("errorType") == "timeout":
                raise SignalError(
                    f"Prometheus at {self._display_url} could not run the query `{promql}` "
                    f"(HTTP {status}: {error}); it may be overloaded, try again shortly."
                )
            raise SignalError(
                f"Prometheus at {self._display_url} failed the query `{promql}` "
                f"(HTTP {status}: {error})."
            )
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._malformed(promql)
        return data
