"""The drill server under hostile requests: replicas are bounded like an
admission limit (422 with a sentence), every malformed request gets a 4xx
(never 500), incomplete requests are cut off, and other clients are served
meanwhile. The real `kubectl` is used where the issue found the problem."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import httpx
import pytest
from support import require_binary

from console.clock import ScaledClock
from console.drill import server as drill_server
from console.drill.scenario import load_scenario
from console.drill.server import DrillServer, write_kubeconfig
from console.drill.world import World

pytestmark = pytest.mark.integration

DEPLOYMENT = "/apis/apps/v1/namespaces/shop/deployments/order-service"


@pytest.fixture
def drill():
    scenario = load_scenario("bad-deploy")
    world = World(scenario, clock=ScaledClock(scenario.start, speed=0))
    server = DrillServer(world).start()
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        yield server, client
    server.stop()


def raw(server: DrillServer, data: bytes, timeout: float = 20.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes (or `timeout`)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b"Connection: close" not in answer and answer.startswith(b"HTTP/1.1 2"):
                    break
        except TimeoutError:
            pass
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def replicas(client: httpx.Client) -> int:
    return client.get(DEPLOYMENT).json()["spec"]["replicas"]


# --- replicas: an admission limit -------------------------------------------------------


def test_kubectl_scale_to_100000_is_refused_at_once_and_the_drill_stays_healthy(drill, tmp_path):
    kubectl = require_binary("kubectl", "kubernetes-client")
    server, client = drill
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, "shop")
    result = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "scale", "deployment/order-service", "--replicas=100000"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "must be no more than 100" in result.stderr and "admission limit" in result.stderr
    assert replicas(client) == 3  # nothing changed
    assert client.get("/health/order-service").status_code in (200, 503)


@pytest.mark.parametrize(
    ("content_type", "patch"),
    [
        ("application/merge-patch+json", {"spec": {"replicas": 1_000_000_000}}),
        ("application/json-patch+json", [{"op": "replace", "path": "/spec/replicas", "value": 100000}]),
    ],
)
def test_a_patch_to_huge_replicas_is_422_with_a_sentence(drill, content_type, patch):
    server, client = drill
    response = client.patch(DEPLOYMENT, content=json.dumps(patch), headers={"Content-Type": content_type})
    assert response.status_code == 422
    assert "admission limit" in response.json()["message"]
    assert replicas(client) == 3


def test_the_scale_subresource_is_bounded_too(drill):
    server, client = drill
    response = client.put(f"{DEPLOYMENT}/scale", json={"kind": "Scale", "apiVersion": "autoscaling/v1",
                                                       "metadata": {"name": "order-service"}, "spec": {"replicas": 5000}})
    assert response.status_code == 422 and "admission limit" in response.json()["message"]
    assert replicas(client) == 3


# --- malformed requests: 4xx, never 500, nothing changed ---------------------------------


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body"),
    [
        ("PATCH", DEPLOYMENT, "application/json-patch+json",
         [{"op": "replace", "path": "/spec/template/spec/containers", "value": "nginx"}]),
        ("PATCH", DEPLOYMENT, "application/merge-patch+json", {"spec": [1]}),
        ("PATCH", DEPLOYMENT, "application/merge-patch+json", {"metadata": "x"}),
        ("PATCH", DEPLOYMENT, "application/merge-patch+json", {"spec": {"selector": [1]}}),
        ("PATCH", DEPLOYMENT, "application/strategic-merge-patch+json", {"spec": {"template": {"spec": {"containers": [5]}}}}),
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", "application/json",
         {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": []}),
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", "application/json",
         {"metadata": {"name": "x"}, "spec": "holder"}),
        ("PUT", DEPLOYMENT, "application/json", {"metadata": {"name": "order-service"}, "spec": 7}),
        # Found by fuzzing: accepted once, these broke the world for every later request.
        ("PATCH", "/api/v1/namespaces/shop/services/order-service", "application/merge-patch+json",
         {"spec": {"selector": ["app"]}}),
        ("PATCH", DEPLOYMENT, "application/json-patch+json",
         [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": ["x"]}]),
        ("PATCH", DEPLOYMENT, "application/merge-patch+json", {"metadata": {"labels": {"app": 5}}}),
    ],
    ids=["containers-string", "spec-list", "metadata-string", "selector-list", "container-number",
         "lease-metadata-list", "lease-spec-string", "put-spec-number", "service-selector-list",
         "image-list", "label-number"],
)
def test_malformed_kubernetes_requests_are_4xx_and_change_nothing(drill, method, path, content_type, body):
    server, client = drill
    before = client.get(DEPLOYMENT).json()
    response = client.request(method, path, content=json.dumps(body), headers={"Content-Type": content_type})
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.json()["kind"] == "Status" and response.json()["message"]
    after = client.get(DEPLOYMENT).json()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert client.get("/health/order-service").status_code in (200, 503)  # the world still works
    assert client.get("/api/v1/namespaces/shop/pods").status_code == 200
    assert server.last_error is None


@pytest.mark.parametrize("time_param", ["1e300", "-1e300", "inf", "nan", "99999999999999"])
def test_a_prometheus_time_out_of_range_is_400(drill, time_param):
    server, client = drill
    response = client.get("/prometheus/api/v1/query", params={"query": "service:error_rate:ratio", "time": time_param})
    assert response.status_code == 400, response.text
    assert response.json()["errorType"] == "bad_data"


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"PATCH " + DEPLOYMENT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", 400),
        (b"PATCH " + DEPLOYMENT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST /slack/webhook/T HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
        (b"POST /slack/webhook/T HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"GET /health/order-service\r\n", 400),  # HTTP/0.9
    ],
    ids=["content-length-abc", "content-length-negative", "bad-chunk-size", "huge-content-length", "http-0.9"],
)
def test_unreadable_requests_are_answered_4xx_at_once(drill, request_bytes, expected):
    server, client = drill
    answer = raw(server, request_bytes)
    assert status_of(answer) == expected, answer[:200]
    assert replicas(client) == 3


def test_an_incomplete_request_is_cut_off_and_others_are_served_meanwhile(drill, monkeypatch):
    server, client = drill
    monkeypatch.setattr(drill_server, "REQUEST_READ_TIMEOUT", 1.0)
    host, port = server.url.removeprefix("http://").split(":")
    stuck = []
    for _ in range(20):  # twenty clients that send half a request and stop
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"PATCH " + DEPLOYMENT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        stuck.append(sock)
    try:
        # Meanwhile, everybody else is served.
        for _ in range(5):
            assert client.get("/health/order-service").status_code in (200, 503)
        started = time.monotonic()
        stuck[0].settimeout(30)
        answer = b""
        while chunk := stuck[0].recv(65536):
            answer += chunk
        assert time.monotonic() - started < 20  # cut at the read deadline, not after the idle timeout
        assert status_of(answer) in (0, 408)  # answered 408, or the connection was simply closed
    finally:
        for sock in stuck:
            sock.close()
    assert replicas(client) == 3
