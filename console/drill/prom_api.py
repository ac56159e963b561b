"""The drill world's Prometheus: the HTTP query API and a scrape endpoint.

Under the server's `/prometheus` prefix it answers `api/v1/query` and
`api/v1/query_range` (GET, or POST with a form body) in exactly Prometheus'
response format, for the recording-rule style series the console reads:

    service:error_rate:ratio{service="NAME"}                 fraction 0..1
    service:latency_p95:seconds{service="NAME"}              seconds
    service:request_rate:rps{service="NAME"}                 requests per second
    service_route:error_rate:ratio{service="NAME",route="/path"}

The query language understood is a vector selector: a metric name, optional
`{label="value", ...}` matchers (`=`, `!=`, `=~`, `!~`, regexes fully anchored
as in Prometheus) and an optional `offset 10m`, optionally wrapped in
`timestamp(...)` (the time each value was sampled, in Unix seconds, without
the metric name, as Prometheus answers it: the console's freshness check).
Anything else is answered with Prometheus' 400 `bad_data` error, so a
client's error path is exercised too.

`/metrics` exposes counters consistent with the simulated rates
(`http_requests_total{service,route,status}` and the
`http_request_duration_seconds` histogram) so a real Prometheus can scrape the
drill world.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import parse_qs

from console.drill.kube_api import Response
from console.drill.world import HISTOGRAM_BUCKETS, Sample, World

LOOKBACK = timedelta(minutes=5)
"""Prometheus' staleness window: a sample older than this is not returned."""
MAX_POINTS = 11000
"""Prometheus refuses range queries with more points per series than this."""

SERIES: dict[str, Callable[[Sample], Any]] = {
    "service:error_rate:ratio": lambda s: s.error_rate,
    "service:latency_p95:seconds": lambda s: s.latency_p95_s,
    "service:request_rate:rps": lambda s: s.request_rate,
}
ROUTE_SERIES = "service_route:error_rate:ratio"

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_DURATION_RE = re.compile(r"^(?:(\d+)(ms|s|m|h|d|w|y))+$")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>=~|!~|!=|=)
      | (?P<punct>[{},])
      | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<duration>\d+(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*)
      | (?P<other>\S)
    )""",
    re.VERBOSE,
)


class BadData(Exception):
    """A query Prometheus would reject with 400 bad_data; str() is its message."""


@dataclass(frozen=True)
class Matcher:
    """One label matcher of a selector: `label op "value"`."""

    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        """Does a series with these labels satisfy the matcher? (A missing label is "".)"""
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Selector:
    """A parsed vector selector."""

    matchers: tuple[Matcher, ...]
    offset: float = 0.0
    # `timestamp(selector)`: the value is the sample's time, the name is dropped.
    timestamp: bool = False


def parse_duration(text: str) -> float:
    """Seconds from a Prometheus duration ("10m", "1h30m") or a float ("15", "0.5")."""
    text = text.strip()
    if _DURATION_RE.match(text):
        return sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    try:
        value = float(text)
    except ValueError:
        raise BadData(f'cannot parse "{text}" to a valid duration') from None
    if not math.isfinite(value):
        raise BadData(f'cannot parse "{text}" to a valid duration')
    return value


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


_TIMESTAMP_CALL = re.compile(r"^\s*timestamp\s*\((?P<inner>.*)\)\s*$", re.DOTALL)


def parse_query(query: str) -> Selector:
    """Parse a vector selector with optional matchers and offset, optionally
    inside `timestamp(...)`; BadData otherwise."""
    call = _TIMESTAMP_CALL.match(query)
    if call is not None:
        return replace(parse_query(call.group("inner")), timestamp=True)
    tokens: list[tuple[str, str, int]] = []
    position = 0
    text = query.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            break
        kind = match.lastgroup or "other"
        tokens.append((kind, match.group(kind), match.start(kind) + 1))
        position = match.end()
    if not tokens:
        raise BadData("1:1: parse error: no expression found in input")

    index = 0

    def peek() -> tuple[str, str, int] | None:
        return tokens[index] if index < len(tokens) else None

    def unexpected(token: tuple[str, str, int] | None, wanted: str) -> BadData:
        if token is None:
            return BadData(f"1:{len(text) + 1}: parse error: unexpected end of input, expected {wanted}")
        return BadData(f"1:{token[2]}: parse error: unexpected {token[1]!r}, expected {wanted}")

    matchers: list[Matcher] = []
    token = peek()
    if token and token[0] == "ident" and token[1] not in ("offset",):
        matchers.append(Matcher("__name__", "=", token[1]))
        index += 1
        token = peek()
    if token and token[1] == "{":
        index += 1
        while True:
            token = peek()
            if token and token[1] == "}":
                index += 1
                break
            if not token or token[0] != "ident":
                raise unexpected(token, "label matching or '}'")
            label = token[1]
            index += 1
            op = peek()
            if not op or op[0] != "op":
                raise unexpected(op, "label matching operator")
            index += 1
            value = peek()
            if not value or value[0] != "string":
                raise unexpected(value, "string")
            index += 1
            unquoted = _unquote(value[1])
            if op[1] in ("=~", "!~"):
                try:
                    re.compile(unquoted)
                except re.error as exc:
                    raise BadData(f"1:{value[2]}: parse error: invalid regular expression {unquoted!r}: {exc}") from None
            matchers.append(Matcher(label, op[1], unquoted))
            token = peek()
            if token and token[1] == ",":
                index += 1
            elif not token or token[1] != "}":
                raise unexpected(token, "',' or '}'")
    if not matchers:
        raise unexpected(peek(), "a metric name or '{'")
    if all(m.matches({}) for m in matchers):
        raise BadData("vector selector must contain at least one non-empty matcher")
    offset = 0.0
    token = peek()
    if token and token[0] == "ident" and token[1] == "offset":
        index += 1
        duration = peek()
        if not duration or duration[0] != "duration":
            raise unexpected(duration, "duration")
        offset = parse_duration(duration[1])
        index += 1
    if peek() is not None:
        token = peek()
        raise BadData(f"1:{token[2]}: parse error: unexpected {token[1]!r} in this drill's query language: only a metric selector with optional offset is supported")
    return Selector(tuple(matchers), offset)


def parse_time(text: str) -> datetime:
    """A Prometheus time parameter: RFC 3339 or a Unix timestamp."""
    text = text.strip()
    try:
        return datetime.fromtimestamp(float(text), timezone.utc)
    except (OverflowError, OSError):
        raise BadData(f'cannot parse "{text}" to a valid timestamp: out of range') from None
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadData(f'cannot parse "{text}" to a valid timestamp') from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (Go's FormatFloat 'f', -1)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def _timestamp(at: datetime) -> float:
    return round(at.timestamp(), 3)


class PromApi:
    """Answers the Prometheus query API and /metrics from a World."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._all_series: list[tuple[dict[str, str], Callable[[Sample], Any]]] | None = None

    # -- series ------------------------------------------------------------

    def _series(self) -> list[tuple[dict[str, str], Callable[[Sample], Any]]]:
        """Every series the world serves (its services and their routes never change)."""
        if self._all_series is None:
            self._all_series = self._build_series()
        return self._all_series

    def _build_series(self) -> list[tuple[dict[str, str], Callable[[Sample], Any]]]:
        out: list[tuple[dict[str, str], Callable[[Sample], Any]]] = []
        for service in self.world.service_names():
            for name, getter in SERIES.items():
                out.append(({"__name__": name, "service": service}, getter))
            for route, _ in self.world.route_shares(service):
                out.append(
                    (
                        {"__name__": ROUTE_SERIES, "service": service, "route": route},
                        lambda s, r=route: dict(s.route_error_rates).get(r),
                    )
                )
        return out

    def _select(self, selector: Selector) -> list[tuple[dict[str, str], Callable[[Sample], Any]]]:
        return [(labels, getter) for labels, getter in self._series() if all(m.matches(labels) for m in selector.matchers)]

    @staticmethod
    def _value(sample: Sample | None, getter: Callable[[Sample], Any], stamp: bool = False) -> float | None:
        """A series' value in `sample` (the one Prometheus' lookback rule picks),
        or with `stamp` the time that value was sampled; None when there is none."""
        if sample is None:
            return None
        value = getter(sample)
        if value is None:
            return None
        return sample.at.timestamp() if stamp else float(value)

    @staticmethod
    def _metric(labels: dict[str, str], selector: Selector) -> dict[str, str]:
        # Functions drop the metric name from their result, as Prometheus does.
        return {k: v for k, v in labels.items() if k != "__name__"} if selector.timestamp else labels

    # -- HTTP --------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> Response:
        """Answer a request whose path starts with /prometheus or is /metrics."""
        if path == "/metrics":
            if method not in ("GET", "HEAD"):
                return _text(405, "method not allowed\n")
            self.world.advance()
            return Response(200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}, self.exposition().encode())
        sub = path[len("/prometheus"):] or "/"
        if sub in ("/-/healthy", "/-/ready"):
            return _text(200, "Prometheus Server is Healthy.\n" if sub == "/-/healthy" else "Prometheus Server is Ready.\n")
        if sub == "/api/v1/status/buildinfo":
            return _json(200, {"status": "success", "data": {"version": "2.45.0-drill", "revision": "drill", "branch": "drill", "goVersion": "n/a"}})
        if sub not in ("/api/v1/query", "/api/v1/query_range"):
            return _text(404, "404 page not found\n")
        if method not in ("GET", "POST"):
            return _error(405, "bad_data", f"method {method} not allowed")
        params = {k: list(v) for k, v in query.items()}
        content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        if method == "POST" and "application/x-www-form-urlencoded" in content_type:
            for key, values in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
                params.setdefault(key, []).extend(values)
        self.world.advance()
        try:
            if sub == "/api/v1/query":
                return _json(200, self.query(params))
            return _json(200, self.query_range(params))
        except BadData as error:
            return _error(400, "bad_data", str(error))
        except (OverflowError, ValueError) as error:  # a time or duration no clock can hold
            return _error(400, "bad_data", f"invalid parameter: {error}")

    def query(self, params: dict[str, list[str]]) -> dict:
        """The /api/v1/query response for these parameters."""
        text = _param(params, "query")
        if text is None:
            raise BadData('invalid parameter "query": query is empty')
        at = parse_time(_param(params, "time")) if _param(params, "time") else self.world.now
        selector = parse_query(text)
        result = []
        # One read (one lock) per service, however many of its series: a query naming a
        # hundred services otherwise queues its reads behind every other request's.
        read: dict[str, Sample | None] = {}
        for labels, getter in self._select(selector):
            service = labels["service"]
            if service not in read:
                read[service] = self.world.sample_at(service, at - timedelta(seconds=selector.offset), LOOKBACK)
            value = self._value(read[service], getter, selector.timestamp)
            if value is not None:
                result.append({"metric": self._metric(labels, selector), "value": [_timestamp(at), format_value(value)]})
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    def query_range(self, params: dict[str, list[str]]) -> dict:
        """The /api/v1/query_range response for these parameters."""
        text = _param(params, "query")
        if text is None:
            raise BadData('invalid parameter "query": query is empty')
        for name in ("start", "end", "step"):
            if not _param(params, name):
                raise BadData(f'invalid parameter "{name}": cannot parse "" to a valid {"duration" if name == "step" else "timestamp"}')
        start = parse_time(_param(params, "start"))
        end = parse_time(_param(params, "end"))
        step = parse_duration(_param(params, "step"))
        if end < start:
            raise BadData('invalid parameter "end": end timestamp must not be before start time')
        if step <= 0:
            raise BadData('invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer')
        if (end - start).total_seconds() / step > MAX_POINTS:
            raise BadData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
        selector = parse_query(text)
        result = []
        count = int((end - start).total_seconds() // step) + 1
        steps = [start + timedelta(seconds=i * step) for i in range(count)]
        offset = timedelta(seconds=selector.offset)
        # Each service's samples are read once (one lock), however many of its series and steps.
        read: dict[str, tuple[list[Sample], list[datetime]]] = {}
        for labels, getter in self._select(selector):
            service = labels["service"]
            if service not in read:
                samples = self.world.samples(service)
                read[service] = (samples, [sample.at for sample in samples])
            samples, times = read[service]
            values = []
            for at in steps:
                index = bisect.bisect_right(times, at - offset) - 1
                if index < 0 or at - offset - times[index] > LOOKBACK:
                    continue
                value = self._value(samples[index], getter, selector.timestamp)
                if value is not None:
                    values.append([_timestamp(at), format_value(value)])
            if values:
                result.append({"metric": self._metric(labels, selector), "values": values})
        return {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def exposition(self) -> str:
        """/metrics in the Prometheus text format."""
        lines = [
            "# HELP http_requests_total Requests handled, by service, route and status code.",
            "# TYPE http_requests_total counter",
        ]
        counters = self.world.counters()
        for service, totals in counters.items():
            for (route, status), count in sorted(totals.requests.items()):
                lines.append(f"http_requests_total{{{_labels(service=service, route=route, status=status)}}} {math.floor(count)}")
        lines += [
            "# HELP http_request_duration_seconds Request latency.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        for service, totals in counters.items():
            total = math.floor(totals.count)
            for le, count in zip(HISTOGRAM_BUCKETS, totals.buckets):
                lines.append(f"http_request_duration_seconds_bucket{{{_labels(service=service, le=format_value(le))}}} {min(math.floor(count), total)}")
            lines.append(f"http_request_duration_seconds_bucket{{{_labels(service=service, le='+Inf')}}} {total}")
            lines.append(f"http_request_duration_seconds_sum{{{_labels(service=service)}}} {format_value(round(totals.total_seconds, 3))}")
            lines.append(f"http_request_duration_seconds_count{{{_labels(service=service)}}} {total}")
        return "\n".join(lines) + "\n"


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{key}="{escape(value)}"' for key, value in labels.items())


def _param(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def _json(status: int, data: dict) -> Response:
    return Response(status, {"Content-Type": "application/json"}, json.dumps(data).encode())


def _error(status: int, kind: str, message: str) -> Response:
    return _json(status, {"status": "error", "errorType": kind, "error": message})


def _text(status: int, text: str) -> Response:
    return Response(status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode())
