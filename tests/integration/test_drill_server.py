"""The drill world's HTTP server, over real HTTP: Prometheus API, health,
Slack sink, Kubernetes API writes driving the world, the request log."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import httpx
import pytest
import yaml

from console.clock import ScaledClock
from console.drill.scenario import SCENARIO_DIR as SCENARIOS, load_scenario, parse_scenario
from console.drill.server import DrillServer, write_kubeconfig
from console.drill.world import World

pytestmark = pytest.mark.integration

ERROR_RATE = 'service:error_rate:ratio{service="order-service"}'
LATENCY = 'service:latency_p95:seconds{service="order-service"}'


@pytest.fixture
def drill():
    scenario = load_scenario("bad-deploy")
    clock = ScaledClock(scenario.start, speed=0)
    world = World(scenario, clock=clock)
    server = DrillServer(world).start()
    with httpx.Client(base_url=server.url, timeout=5.0) as client:
        yield server, client, clock
    server.stop()


def instant(client: httpx.Client, query: str, method: str = "GET") -> list[dict]:
    if method == "GET":
        response = client.get("/prometheus/api/v1/query", params={"query": query})
    else:
        response = client.post("/prometheus/api/v1/query", data={"query": query})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and body["data"]["resultType"] == "vector"
    return body["data"]["result"]


def test_bad_deploy_metrics_as_prometheus_answers_them(drill):
    server, client, _ = drill
    [error_rate] = instant(client, ERROR_RATE)
    assert error_rate["metric"] == {"__name__": "service:error_rate:ratio", "service": "order-service"}
    timestamp, value = error_rate["value"]
    assert value == "0.08" and timestamp == server.world.start.timestamp()
    [latency] = instant(client, LATENCY, method="POST")
    assert latency["value"][1] == "2"
    [before] = instant(client, LATENCY + " offset 10m")
    assert before["value"][1] == "0.25"
    routes = instant(client, 'service_route:error_rate:ratio{service="order-service",route=~"/orders.*"}')
    assert {r["metric"]["route"] for r in routes} == {"/orders", "/orders/{id}"}
    assert instant(client, 'service:error_rate:ratio{service="nope"}') == []


def test_timestamp_of_a_selector_is_when_its_value_was_sampled(drill):
    server, client, clock = drill
    clock.advance(20)  # samples are 15 s apart: the newest is 5 s old
    [stamp] = instant(client, f"timestamp({ERROR_RATE})")
    assert stamp["metric"] == {"service": "order-service"}  # functions drop the name
    evaluated, value = stamp["value"]
    sampled = server.world.start + timedelta(seconds=15)
    assert float(value) == sampled.timestamp() and evaluated == (sampled + timedelta(seconds=5)).timestamp()
    [before] = instant(client, f"timestamp({LATENCY} offset 10m)")
    assert float(before["value"][1]) == (sampled - timedelta(minutes=10)).timestamp()
    for query in (f"timestamp({ERROR_RATE}", f"timestamp(sum({ERROR_RATE}))"):
        assert client.get("/prometheus/api/v1/query", params={"query": query}).status_code == 400


def test_bad_queries_get_prometheus_bad_data_errors(drill):
    _, client, _ = drill
    for query in ('sum(rate(http_requests_total[5m]))', 'service:error_rate:ratio{service=}', ""):
        response = client.get("/prometheus/api/v1/query", params={"query": query})
        assert response.status_code == 400
        body = response.json()
        assert body["status"] == "error" and body["errorType"] == "bad_data" and body["error"]


def test_range_query_returns_the_prefilled_30_minutes(drill):
    server, client, _ = drill
    start = server.world.start - timedelta(minutes=30)
    response = client.get(
        "/prometheus/api/v1/query_range",
        params={"query": ERROR_RATE, "start": start.timestamp(), "end": server.world.start.isoformat(), "step": "15s"},
    )
    body = response.json()
    assert body["data"]["resultType"] == "matrix"
    values = body["data"]["result"][0]["values"]
    assert len(values) == 121
    assert values[0] == [start.timestamp(), "0.001"] and values[-1][1] == "0.08"


def test_a_query_reads_each_services_samples_once_however_many_series_and_steps(drill, monkeypatch):
    """Each read takes the world's lock: a query over a hundred services' series (the
    console batches them) read once per series and step queued behind every other
    request, and a 1,000-service drill's first refresh took a minute."""
    server, client, _ = drill
    world, reads = server.world, []
    for name in ("sample_at", "samples"):
        original = getattr(world, name)
        monkeypatch.setattr(world, name, lambda *args, _read=original, _name=name: reads.append(_name) or _read(*args))
    routes = instant(client, 'service_route:error_rate:ratio{service="order-service"}')
    assert len(routes) == 2 and reads == ["sample_at"]
    reads.clear()
    start = server.world.start - timedelta(minutes=2)
    response = client.get("/prometheus/api/v1/query_range", params={
        "query": 'timestamp(service_route:error_rate:ratio{service="order-service"})',
        "start": start.timestamp(), "end": server.world.start.timestamp(), "step": "10s"})
    series = response.json()["data"]["result"]
    assert len(series) == 2 and reads == ["samples"]
    # Each step shows when its value was sampled: the newest sample at or before it (every 15 s).
    for at, sampled in series[0]["values"]:
        assert 0 <= at - float(sampled) < 15


def test_bad_deploy_health_endpoint_still_answers_healthy(drill):
    # 8 % of requests fail, but the service is up: its health check passes.
    _, client, _ = drill
    response = client.get("/health/order-service")
    assert response.status_code == 200 and response.json()["status"] == "healthy"


@pytest.fixture
def unhealthy_drill():
    """bad-deploy with 1.2.3's health endpoint failing too."""
    data = yaml.safe_load((SCENARIOS / "bad-deploy.yaml").read_text())
    data["services"][0]["versions"]["1.2.3"]["healthy"] = False
    scenario = parse_scenario(data, "bad-deploy-unhealthy")
    clock = ScaledClock(scenario.start, speed=0)
    server = DrillServer(World(scenario, clock=clock)).start()
    with httpx.Client(base_url=server.url, timeout=5.0) as client:
        yield server, client, clock
    server.stop()


def test_health_is_503_before_rollback_and_200_after(unhealthy_drill):
    server, client, clock = unhealthy_drill
    response = client.get("/health/order-service")
    assert response.status_code == 503 and response.json()["status"] == "unhealthy"
    assert client.get("/health/nobody").status_code == 404
    # Roll back over the Kubernetes API: the old template, as kubectl rollout undo writes it.
    replicasets = client.get("/apis/apps/v1/namespaces/shop/replicasets").json()["items"]
    target = next(rs for rs in replicasets if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2")
    template = target["spec"]["template"]
    del template["metadata"]["labels"]["pod-template-hash"]
    patch = client.patch(
        "/apis/apps/v1/namespaces/shop/deployments/order-service",
        content=json.dumps({"spec": {"template": template}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patch.status_code == 200, patch.text
    for _ in range(12):
        clock.advance(5)
        client.get("/apis/apps/v1/namespaces/shop/deployments/order-service")
    status = client.get("/apis/apps/v1/namespaces/shop/deployments/order-service").json()["status"]
    assert status["updatedReplicas"] == 3 and status["availableReplicas"] == 3
    assert client.get("/health/order-service").json()["status"] == "healthy"
    clock.advance(15)
    [error_rate] = instant(client, ERROR_RATE)
    assert error_rate["value"][1] == "0.001"


def test_slack_sink_records_messages_without_logging_the_token(drill):
    server, client, _ = drill
    assert client.post("/slack/webhook/T0/B0/secret-token", json={"text": "Rollback in progress"}).text == "ok"
    assert client.post("/slack/webhook/T0/B0/secret-token", content=b"not json").status_code == 400
    messages = client.get("/slack/messages").json()["messages"]
    assert [m["payload"]["text"] for m in messages] == ["Rollback in progress"]
    assert not any("secret-token" in path for _, path, _ in server.requests)
    assert ("GET", "/slack/messages", 200) in server.requests


def test_metrics_exposition_counters_grow_with_time(drill):
    _, client, clock = drill

    def total() -> float:
        text = client.get("/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("http_requests_total{"))

    first = total()
    assert first == pytest.approx(40 * 1800, rel=0.01)
    clock.advance(60)
    assert total() == pytest.approx(first + 40 * 60, rel=0.01)
    text = client.get("/metrics").text
    assert 'http_request_duration_seconds_bucket{service="order-service",le="+Inf"}' in text
    assert "# TYPE http_request_duration_seconds histogram" in text


def test_watch_streams_are_chunked_and_a_disconnect_is_harmless(drill):
    server, client, _ = drill
    with client.stream("GET", "/api/v1/namespaces/shop/pods", params={"watch": "true", "timeoutSeconds": "1"}) as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        first = next(response.iter_lines())
        assert json.loads(first)["type"] == "ADDED"
    # The server still answers after the client walked away mid-stream.
    assert client.get("/api/v1/namespaces/shop/pods").status_code == 200


def test_keep_alive_and_the_request_log(drill):
    server, client, _ = drill
    server.clear_requests()
    for _ in range(5):
        assert client.get("/api").status_code == 200
    assert server.requests == [("GET", "/api", 200)] * 5
    with socket.create_connection(server._httpd.server_address[:2], timeout=5) as raw:
        raw.sendall(b"GET /health/order-service HTTP/1.1\r\nHost: x\r\n\r\nGET /api HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 ") < 2:
            data += raw.recv(65536)
    assert data.startswith(b"HTTP/1.1 200")


def test_write_kubeconfig(tmp_path):
    path = write_kubeconfig(tmp_path / "kube" / "config", "http://127.0.0.1:1234", "shop")
    import yaml

    config = yaml.safe_load(path.read_text())
    assert config["current-context"] == "drill"
    assert config["clusters"][0] == {"name": "drill", "cluster": {"server": "http://127.0.0.1:1234"}}
    assert config["contexts"][0]["context"] == {"cluster": "drill", "user": "drill-trainee", "namespace": "shop"}
    assert path.stat().st_mode & 0o777 == 0o600
