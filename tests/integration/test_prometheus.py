"""The console against a real Prometheus scraping the drill world.

One world for the module, three services taken from the shipped scenarios:

- order-service (single-endpoint): /orders/{id}/refund fails 40 %, the rest is fine;
- user-service (intermittent): the error wave scaled down from 240 s to 30 s
  (15 s at 4 %, 15 s at 0.2 %) so crossings of the 1 % line come within the test;
- catalog-service (latency-spike): 2.3.0 (p95 900 ms, was 250 ms) is deployed
  while the test runs, so Prometheus has data from before the deploy.

Prometheus evaluates the console's recording rules from the raw counters the
drill exposes; the console reads the rules' series.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import yaml
from click.testing import CliRunner

from conftest_adapters import HangingServer
from console.cli import cli
from console.config import parse
from console.drill import runner
from console.drill.scenario import SCENARIO_DIR, parse_scenario
from console.model import Action
from console.session import Session
from console.store import Store

DEPLOY_AT = 14
"""Seconds after the start when catalog-service 2.3.0 goes out (Prometheus
needs ~8 s to deliver its first rule values; the 'before' read is 2 s earlier)."""
WAIT = 75.0
"""Upper bound on waiting for a signal to appear (a failing test, not a slow one)."""
QUERIES = {
    "error_rate": 'service:error_rate:ratio{service="%s"}',
    "latency_p95": 'service:latency_p95:seconds{service="%s"}',
    "request_rate": 'service:request_rate:rps{service="%s"}',
    "route_error_rate": 'service_route:error_rate:ratio{service="%s"}',
}


def _service(name: str) -> dict:
    return yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text())["services"][0]


@pytest.fixture(scope="module")
def prometheus_scenario():
    orders = _service("single-endpoint")
    users = _service("intermittent")
    users["versions"]["6.1.0"]["intermittent"] = {"period_s": 30, "high": 0.04, "low": 0.002, "duty": 0.5}
    catalog = _service("latency-spike")
    catalog["history"] = catalog["history"][:-1]  # 2.3.0 goes out during the test
    catalog["versions"]["2.3.0"]["ready_seconds"] = 1
    return parse_scenario(
        {
            "name": "signals",
            "seed": 5,
            "services": [orders, users, catalog],
            "timeline": [{"at": DEPLOY_AT, "deploy": {"service": "catalog-service", "version": "2.3.0"}}],
            "expect": {"action": "investigate"},
        }
    )


def _config(drill, prometheus_url: str | None = None, **overrides) -> dict:
    data = runner.console_config(drill.world.scenario, drill.server.url, drill.kubeconfig_path, prometheus_url or drill.prometheus.url)
    data["refresh_interval"] = 1.0
    data["signals"] = {"before_deploy_margin_seconds": 2, "history_minutes": 2, "intermittent_window_minutes": 2}
    data.update(overrides)
    return data


def _session(data: dict, tmp_path, clock=None) -> Session:
    return Session(parse(data), Store(tmp_path / "incidents.db"), clock=clock)


def _prom_query(url: str, query: str, at: float | None = None) -> list[dict]:
    params = {"query": query} if at is None else {"query": query, "time": f"{at:.3f}"}
    body = httpx.get(f"{url}/api/v1/query", params=params, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


async def _until(session: Session, service: str, predicate, timeout: float = WAIT):
    """Refresh every second until predicate(view) holds; the last view either way."""
    deadline = time.monotonic() + timeout
    while True:
        view = next(v for v in await session.refresh() if v.snapshot.service == service)
        if predicate(view) or time.monotonic() > deadline:
            return view
        await asyncio.sleep(1.0)


# --- values ------------------------------------------------------------------


def test_status_json_equals_what_prometheus_answers(prometheus_drill, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_config(prometheus_drill)))
    result = CliRunner().invoke(cli, ["status", "--json", "--config", str(path)])
    assert result.exit_code == 0, result.output
    services = {s["service"]: s for s in json.loads(result.output)}
    assert set(services) == {"order-service", "user-service", "catalog-service"}

    url = prometheus_drill.prometheus.url
    for name, status in services.items():
        assert status["stale"] is False, status["errors"]
        assert status["errors"] == []
        for signal, template in QUERIES.items():
            # Asking Prometheus at the sample time the console reports gives that very sample.
            at = datetime.fromisoformat(status["sampled_at"][signal]).timestamp()
            answer = _prom_query(url, template % name, at)
            assert answer, f"Prometheus has no {signal} for {name}"
            assert 0 <= status["age_seconds"][signal] < 3 * 1.0
            if signal == "route_error_rate":
                # NaN (0/0: no request on that route in the window) is "no value" to the console.
                expected = {item["metric"]["route"]: float(item["value"][1]) for item in answer if item["value"][1] != "NaN"}
                assert status["route_error_rates"] == expected
            elif signal == "latency_p95":
                assert status["latency_p95_ms"] == float(answer[0]["value"][1]) * 1000
            else:
                assert status[signal] == float(answer[0]["value"][1])


async def test_single_endpoint_failing_is_named(prometheus_drill, tmp_path):
    session = _session(_config(prometheus_drill), tmp_path)
    try:
        view = await _until(session, "order-service", lambda v: v.snapshot.signals.single_endpoint, timeout=20)
    finally:
        await session.aclose()
    assert view.snapshot.signals.single_endpoint == "/orders/{id}/refund"
    assert view.decision.action is Action.INVESTIGATE
    assert any(str(r).startswith("Single endpoint failing: /orders/{id}/refund (") for r in view.decision.reasons)


async def test_latency_spike_against_the_p95_before_the_deploy(prometheus_drill, tmp_path):
    session = _session(_config(prometheus_drill), tmp_path)
    try:
        view = await _until(session, "catalog-service", lambda v: v.snapshot.signals.latency_spike)
    finally:
        await session.aclose()
    metrics = view.snapshot.metrics
    assert view.snapshot.signals.latency_spike, (metrics.latency_p95_ms, metrics.latency_p95_before_ms)
    assert view.snapshot.current_revision.versions == ("2.3.0",)
    assert metrics.latency_p95_before_ms < 500  # 2.2.1: p95 250 ms (histogram buckets blur it a little)
    assert metrics.latency_p95_ms >= 2 * metrics.latency_p95_before_ms
    assert view.decision.action is Action.INVESTIGATE
    assert any(str(r).startswith("Latency spike: p95") for r in view.decision.reasons)


async def _until_prometheus_holds_history(url: str, samples: int = 6, seconds: float = 6.0) -> None:
    """Wait until Prometheus holds at least `samples` error-rate samples, the
    oldest `seconds` old: what this test needs, whichever tests ran before it."""
    deadline = time.monotonic() + WAIT
    while True:
        series = _prom_query(url, QUERIES["error_rate"] % "order-service" + "[2m]")
        values = series[0]["values"] if series else []
        if len(values) >= samples and time.time() - float(values[0][0]) >= seconds:
            return
        assert time.monotonic() < deadline, f"Prometheus held only {len(values)} samples after {WAIT} s"
        await asyncio.sleep(0.5)


async def test_history_fills_from_prometheus_at_start(prometheus_drill, tmp_path):
    await _until_prometheus_holds_history(prometheus_drill.prometheus.url)
    session = _session(_config(prometheus_drill), tmp_path)
    started = datetime.now(timezone.utc)
    try:
        (view,) = await session.refresh("order-service")
    finally:
        await session.aclose()
    history = view.snapshot.metrics.error_rate_history
    series = _prom_query(prometheus_drill.prometheus.url, QUERIES["error_rate"] % "order-service" + "[2m]")
    first_sample = datetime.fromtimestamp(series[0]["values"][0][0], timezone.utc)
    # One range query brought what Prometheus held before this console started.
    assert len(history) >= 5
    assert history[0].at < started - timedelta(seconds=4)
    assert history[0].at >= first_sample - timedelta(seconds=1)
    assert [p.at for p in history] == sorted(p.at for p in history)
    assert len(view.snapshot.metrics.latency_history) >= 5


async def test_intermittent_errors_from_repeated_crossings(prometheus_drill, tmp_path):
    session = _session(_config(prometheus_drill), tmp_path)
    try:
        view = await _until(session, "user-service", lambda v: v.snapshot.signals.intermittent)
    finally:
        await session.aclose()
    rates = [p.value for p in view.snapshot.metrics.error_rate_history]
    assert view.snapshot.signals.intermittent, rates
    assert view.snapshot.signals.crossings >= 3
    assert max(rates) > 0.01 > min(rates)
    # The scenario's 80 requests/s (by now rate() has a full window of scrapes).
    assert view.snapshot.metrics.request_rate == pytest.approx(80, rel=0.15)
    assert view.decision.action is Action.INVESTIGATE
    assert any(str(r).startswith("Intermittent errors: error rate crossed") for r in view.decision.reasons)


# --- staleness and failures -------------------------------------------------


class _Ahead:
    """The wall clock plus a fixed lead: every sample looks that much older."""

    def __init__(self, seconds: float) -> None:
        self.lead = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.lead


async def test_old_samples_are_stale_and_never_roll_back_alone(prometheus_drill, tmp_path):
    # The sample age comes from timestamp(): at 10 s old (> 3 x 1 s) every value is stale.
    session = _session(_config(prometheus_drill), tmp_path, clock=_Ahead(10))
    try:
        views = {v.snapshot.service: v for v in await session.refresh()}
    finally:
        await session.aclose()
    for view in views.values():
        assert view.snapshot.stale
        assert view.snapshot.metrics.error_rate is not None
        ages = [(view.snapshot.taken_at - at).total_seconds() for _, at in view.snapshot.metrics.sampled]
        assert ages and all(9 < age < 13 for age in ages)
        assert view.decision.action is not Action.ROLLBACK_NOW


async def test_silent_prometheus_costs_one_timeout(prometheus_drill, hanging_server: HangingServer, tmp_path):
    data = _config(prometheus_drill, prometheus_url=hanging_server.url)
    data["prometheus"]["timeout"] = 0.5
    session = _session(data, tmp_path)
    started = time.monotonic()
    try:
        views = await session.refresh()
    finally:
        await session.aclose()
    assert time.monotonic() - started < 3.0
    for view in views:
        assert view.snapshot.stale
        assert any("did not answer within 0.5 s" in e for e in view.snapshot.errors)
        assert view.snapshot.health.ready == 3  # the other sources still answered


async def test_health_endpoint_that_hangs_counts_as_down(prometheus_drill, hanging_server: HangingServer, tmp_path):
    data = _config(prometheus_drill, health={"timeout": 0.5})
    data["services"][0]["health_url"] = f"{hanging_server.url}/health"
    session = _session(data, tmp_path)
    down = "Service completely down: health endpoint: timeout after 0.5 s"
    try:
        started = time.monotonic()
        first = {v.snapshot.service: v for v in await session.refresh()}
        assert time.monotonic() - started < 3.0  # one hung endpoint costs its timeout, no more
        second = {v.snapshot.service: v for v in await session.refresh()}
    finally:
        await session.aclose()
    # One timeout with ready pods is a blip; the second in a row is an outage.
    orders = first["order-service"]
    assert orders.snapshot.health.endpoint_ok is False
    assert orders.snapshot.health.endpoint_status == "timeout after 0.5 s"
    assert down not in [str(r) for r in orders.decision.reasons]
    orders = second["order-service"]
    assert orders.snapshot.health.endpoint_failures == 2
    assert orders.decision.action is Action.ROLLBACK_NOW
    assert down in [str(r) for r in orders.decision.reasons]
    assert second["user-service"].snapshot.health.endpoint_ok is True


async def test_prometheus_stopped_mid_run_then_back(prometheus_drill, tmp_path):
    """Last in the module: it stops the shared Prometheus and starts it again."""
    prometheus = prometheus_drill.prometheus
    session = _session(_config(prometheus_drill), tmp_path)
    try:
        (fresh,) = await session.refresh("order-service")
        assert not fresh.snapshot.stale and not fresh.snapshot.errors

        prometheus.stop()
        started = time.monotonic()
        (down,) = await session.refresh("order-service")
        assert time.monotonic() - started < 3.0
        assert down.snapshot.stale
        (error,) = down.snapshot.errors
        assert error.startswith(f"Cannot reach Prometheus at {prometheus.url}: connection refused.")
        # The last values stay on screen with their old sample times.
        assert down.snapshot.metrics.error_rate == fresh.snapshot.metrics.error_rate
        assert down.snapshot.metrics.sampled == fresh.snapshot.metrics.sampled
        assert down.decision.action is Action.SIGNALS_UNAVAILABLE
        (missing,) = down.decision.unavailable
        # What is missing, and since when: the last good sample's time.
        assert (missing.signal, missing.why) == ("error rate", "query failed")
        assert missing.since == dict(fresh.snapshot.metrics.sampled)["error_rate"]

        prometheus.start()
        # Back: no error, and new samples (the rules run again) keep it fresh.
        newer = lambda v: v.snapshot.metrics.sampled_at > fresh.snapshot.metrics.sampled_at  # noqa: E731
        back = await _until(session, "order-service", newer, timeout=30)
        assert newer(back), back.snapshot.errors
        assert not back.snapshot.stale and back.snapshot.errors == ()
    finally:
        await session.aclose()
