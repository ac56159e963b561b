"""PrometheusClient and the health check against the drill world over HTTP
(bad-deploy: order-service 1.2.3 fails 8 % of requests with a p95 of 2 s)."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta

import pytest

from conftest_adapters import HangingServer
from console.model import Samples
from console.signals.health import check, new_session
from console.signals.prometheus import PrometheusClient, SignalError, _parse_value

ERROR_RATE = 'service:error_rate:ratio{service="order-service"}'
LATENCY = 'service:latency_p95:seconds{service="order-service"}'
TOKEN = "s3cret-bearer-token"


@pytest.fixture
async def prometheus(drill):
    client = PrometheusClient(f"{drill.server.url}/prometheus", timeout=2.0, bearer_token=TOKEN)
    yield client
    await client.aclose()


# --- Prometheus ----------------------------------------------------------------


async def test_instant_queries_return_the_bad_deploys_numbers(prometheus, drill):
    (errors,) = await prometheus.query(ERROR_RATE)
    (latency,) = await prometheus.query(LATENCY)
    (before,) = await prometheus.query(f"{ERROR_RATE} offset 10m")

    assert errors.labels["service"] == "order-service"
    assert errors.value == pytest.approx(0.08, abs=0.005)
    assert latency.value == pytest.approx(2.0, rel=0.05)
    assert before.value == pytest.approx(0.001, abs=0.0005)
    now = drill.world.clock.now()
    assert abs((now - errors.at).total_seconds()) < 60
    labels, value, at = errors  # the brief's (labels, value, sample_time) shape
    assert (labels, value, at) == (errors.labels, errors.value, errors.at)


async def test_instant_query_at_a_past_time(prometheus, drill):
    at = drill.world.clock.now() - timedelta(minutes=10)
    (sample,) = await prometheus.query(ERROR_RATE, at=at)
    assert sample.value == pytest.approx(0.001, abs=0.0005)
    assert abs((sample.at - at).total_seconds()) < 1


async def test_per_route_series_and_unknown_service(prometheus):
    routes = await prometheus.query('service_route:error_rate:ratio{service="order-service"}')
    assert sorted(s.labels["route"] for s in routes) == ["/orders", "/orders/{id}"]
    assert await prometheus.query('service:error_rate:ratio{service="no-such-service"}') == []


async def test_range_query_shows_the_deploy(prometheus, drill):
    end = drill.world.clock.now()
    (series,) = await prometheus.query_range(ERROR_RATE, end - timedelta(minutes=5), end, timedelta(minutes=1))

    assert series.labels["service"] == "order-service"
    assert len(series.points) >= 5
    assert [p.at for p in series.points] == sorted(p.at for p in series.points)
    assert series.points[0].value == pytest.approx(0.001, abs=0.0005)
    assert series.points[-1].value == pytest.approx(0.08, abs=0.005)


async def test_series_of_one_range_query_share_their_sample_times(prometheus, drill):
    end = drill.world.clock.now()
    errors, latency = await asyncio.gather(*(
        prometheus.query_range(q, end - timedelta(minutes=5), end, timedelta(minutes=1)) for q in (ERROR_RATE, LATENCY)
    ))
    (error_points,), (latency_points,) = [[s.points for s in series] for series in (errors, latency)]
    assert [p.at for p in error_points] == [p.at for p in latency_points]
    # The times are kept as floats in an array, no object per sample (a sparkline per
    # signal per service keeps hundreds of them), and the two series' are equal.
    assert isinstance(error_points, Samples) and error_points.times == latency_points.times


async def test_many_concurrent_queries_share_one_client(prometheus):
    results = await asyncio.gather(*(prometheus.query(ERROR_RATE) for _ in range(60)))
    assert all(len(r) == 1 and r[0].value == pytest.approx(0.08, abs=0.005) for r in results)


async def test_rejected_query_is_a_sentence(prometheus):
    with pytest.raises(SignalError) as caught:
        await prometheus.query("sum(")
    assert str(caught.value).startswith("Prometheus rejected the query `sum(`: ")
    assert "parse error" in str(caught.value)


async def test_wrong_base_url_says_so(drill):
    async with PrometheusClient(drill.server.url, timeout=2.0) as client:  # missing /prometheus
        with pytest.raises(SignalError) as caught:
            await client.query(ERROR_RATE)
    assert "not the query API" in str(caught.value)


async def test_silent_prometheus_times_out_without_leaking_the_token(hanging_server: HangingServer):
    async with PrometheusClient(f"{hanging_server.url}/prometheus", timeout=0.2, bearer_token=TOKEN) as client:
        started = time.monotonic()
        with pytest.raises(SignalError) as caught:
            await client.query(ERROR_RATE)
    assert time.monotonic() - started < 1.5
    assert str(caught.value) == f"Prometheus at {hanging_server.url}/prometheus did not answer within 0.2 s"
    assert TOKEN not in str(caught.value) and TOKEN not in repr(client)


async def test_refused_connection_hides_basic_auth(closed_port):
    url = f"http://admin:hunter2@127.0.0.1:{closed_port}/prometheus"
    async with PrometheusClient(url, timeout=1.0) as client:
        with pytest.raises(SignalError) as caught:
            await client.query(ERROR_RATE)
    assert str(caught.value).startswith(
        f"Cannot reach Prometheus at http://127.0.0.1:{closed_port}/prometheus: connection refused."
    )
    assert "hunter2" not in str(caught.value)


def test_nan_is_no_value_and_infinity_stays():
    assert _parse_value("NaN") is None
    assert _parse_value("+Inf") == math.inf
    assert _parse_value("-Inf") == -math.inf
    assert _parse_value("0.08") == 0.08


# --- health endpoint -----------------------------------------------------------


async def test_serving_service_is_healthy(drill):
    url = f"{drill.server.url}/health/order-service"
    async with new_session(4) as client:
        ok, status, latency_ms = await check(client, url, timeout=2.0)
        missing = await check(client, url, timeout=2.0, json_path=".data.state")
    assert (ok, status) == (True, "healthy")
    assert latency_ms is not None and 0 < latency_ms < 2000
    assert not missing.ok and missing.status == 'HTTP 200, no ".data.state" in the body'


async def test_service_with_no_ready_pods_answers_503(drill):
    from kubernetes import client as kube, config

    apps = kube.AppsV1Api(config.new_client_from_config(str(drill.kubeconfig_path)))
    apps.patch_namespaced_deployment("order-service", "shop", {"spec": {"replicas": 0}})
    drill.world.clock.advance(120)  # every pod terminated
    async with new_session(4) as client:
        ok, status, latency_ms = await check(client, f"{drill.server.url}/health/order-service", timeout=2.0)
    assert (ok, status) == (False, "HTTP 503")
    assert latency_ms is not None


async def test_health_endpoint_that_hangs_is_down(hanging_server: HangingServer):
    async with new_session(4) as client:
        started = time.monotonic()
        result = await check(client, f"{hanging_server.url}/health", timeout=0.2)
    assert time.monotonic() - started < 1.5
    assert result == (False, "timeout after 0.2 s", None)


async def test_health_endpoint_refusing_connections_is_down(closed_port):
    async with new_session(4) as client:
        result = await check(client, f"http://127.0.0.1:{closed_port}/health", timeout=1.0)
    assert result == (False, "connection refused", None)
