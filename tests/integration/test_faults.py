"""The fault suite: every backend pointed at a misbehaving server (no answer,
trickle, garbage, wrong shape, huge body, 500, reset) answers with a sentence
naming the backend, within its time bound, never a traceback, and nothing is
left half done.

The time bounds are generous (several times the configured timeout): they
say "bounded", not "fast"."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest_adapters import observe_on_a_loop
from fault_server import MODES, FaultyServer

from console.drill.server import write_kubeconfig
from console.platforms.base import PlatformError, Timeout
from console.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.integration

TIMEOUT = 0.5
BOUND = 8.0
"""Seconds any one faulty exchange may take at most (TIMEOUT, retries, start-up, a loaded machine)."""

# Answers of the wrong shape: a number, a list, objects whose fields are the wrong kind.
WRONG_SHAPES = (b"42", b"[1, 2]", b'{"spec": [1], "metadata": []}', b'{"metadata": {"name": 5}, "spec": {"replicas": "x", "template": 3}, "status": []}',
                # A list where the Deployment belongs: no pods seen is not "no pods wanted".
                b'{"kind": "DeploymentList", "metadata": {}, "items": []}')


def _kubernetes(tmp_path: Path, server: FaultyServer) -> KubernetesPlatform:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, "shop")
    return KubernetesPlatform("order-service", "shop", "order-service", kubeconfig=str(kubeconfig), timeout=TIMEOUT)


def _mode_cases():
    for mode in MODES:
        if mode == "wrong_shape":
            for body in WRONG_SHAPES:
                yield pytest.param(mode, body, id=f"wrong_shape-{body[:12].decode()}")
        else:
            yield pytest.param(mode, b"", id=mode)


# --- Kubernetes ------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "body"), list(_mode_cases()))
@pytest.mark.parametrize("call", ["health", "history", "plan_rollback", "observe"])
def test_kubernetes_faults_are_sentences_within_the_bound(tmp_path, faulty_server, mode, body, call):
    server = faulty_server(mode, body)
    platform = _kubernetes(tmp_path, server)
    started = time.monotonic()
    with pytest.raises(PlatformError) as caught:
        getattr(platform, call)()
    assert time.monotonic() - started < BOUND
    message = str(caught.value)
    assert "Kubernetes" in message, message
    assert "drill-trainee" not in message  # the kubeconfig's token
    assert "PATCH" not in server.methods and "POST" not in server.methods  # nothing was changed


@pytest.mark.parametrize(("mode", "body"), list(_mode_cases()))
def test_the_refresh_cycles_read_on_its_event_loop_fails_as_the_clients_read(tmp_path, faulty_server, mode, body):
    """The refresh cycle reads the deployment with aiohttp (`observe_async`):
    each fault is the same sentence as the client's `observe`, within the bound."""
    server = faulty_server(mode, body)
    failures = []
    for read in (lambda p: p.observe(False), observe_on_a_loop):
        started = time.monotonic()
        with pytest.raises(PlatformError) as caught:
            read(_kubernetes(tmp_path, server))
        assert time.monotonic() - started < BOUND
        failures.append((type(caught.value), str(caught.value)))
    client, loop = failures
    if mode == "garbage":  # urllib3 sees the connection end, aiohttp an answer that is not HTTP
        assert client[0] is loop[0] and "Cannot reach the Kubernetes API" in loop[1]
    elif client[0] is Timeout:  # the client's read timeout and its total deadline race: either sentence
        assert loop[0] is Timeout
        assert all(f"did not answer within {TIMEOUT:g} s" in sentence for sentence in (loop[1], client[1]))
    else:
        assert loop == client
    assert "drill-trainee" not in loop[1]


def test_a_trickling_kubernetes_api_is_cut_at_the_total_deadline(tmp_path, faulty_server):
    platform = _kubernetes(tmp_path, faulty_server("trickle"))
    started = time.monotonic()
    with pytest.raises(PlatformError) as caught:
        platform.health()
    assert time.monotonic() - started < BOUND
    assert f"did not answer within {TIMEOUT:g} s" in str(caught.value)
    assert "the whole answer must arrive in that time" in str(caught.value)


def test_a_huge_kubernetes_answer_is_refused_not_read_into_memory(tmp_path, faulty_server, monkeypatch):
    from console.platforms import bounded

    # A small cap so the test does not have to stream 64 MiB; the mechanism is the same.
    monkeypatch.setattr(bounded, "MAX_RESPONSE_BYTES", 2 * 1024 * 1024)
    platform = KubernetesPlatform(
        "order-service", "shop", "order-service",
        kubeconfig=str(write_kubeconfig(tmp_path / "kubeconfig", faulty_server("huge").url, "shop")),
        timeout=30,
    )
    with pytest.raises(PlatformError) as caught:
        platform.health()
    assert "with more than 2 MiB" in str(caught.value)


# --- the command line: status and rollback against a faulty cluster ---------------------


def _config(tmp_path: Path, kube_url: str, prometheus_url: str | None = None) -> Path:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kube_url, "shop")
    config = {
        "refresh_interval": 2,
        "clusters": {"faulty": {"kubeconfig": str(kubeconfig), "timeout": TIMEOUT}},
        "services": [
            {"name": "order-service", "namespace": "shop", "deployment": "order-service", "cluster": "faulty"},
        ],
    }
    if prometheus_url:
        config["prometheus"] = {"url": prometheus_url, "timeout": TIMEOUT}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _cli(*args: str, tmp_path: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env)


@pytest.mark.parametrize("mode", ["trickle", "wrong_shape", "huge"])
def test_status_against_a_faulty_cluster_is_signals_unavailable_not_healthy(tmp_path, faulty_server, mode):
    server = faulty_server(mode, b"42")
    result = _cli("status", "--config", str(_config(tmp_path, server.url)), "--json", tmp_path=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 4, result.stdout + result.stderr
    [service] = json.loads(result.stdout)
    assert service["decision"]["action"] == "signals_unavailable"
    assert service["decision"]["unavailable"][0]["signal"] == "pod counts"
    assert any("Kubernetes" in e for e in service["errors"]), service["errors"]


def test_rollback_against_a_trickling_cluster_stops_with_a_sentence_and_changes_nothing(tmp_path, faulty_server):
    server = faulty_server("trickle")
    config = _config(tmp_path, server.url)
    result = _cli("rollback", "order-service", "--config", str(config), "--reason", "probe", "--yes",
                  "--timeout", "20", tmp_path=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode != 0
    assert "Kubernetes" in result.stdout + result.stderr
    assert "PATCH" not in server.methods
    from console.store import Store

    db = tmp_path / "state" / "rollback-console" / "incidents.db"
    if db.exists():
        with Store(db) as store:
            kinds = [e.kind for i in store.incidents() for e in store.events(i.id)]
        assert not any(k.startswith("rollback") for k in kinds), kinds


# --- Prometheus and the health endpoints ------------------------------------------

PROMETHEUS_SHAPES = WRONG_SHAPES + (
    b'{"status": "success", "data": {"resultType": "vector", "result": {"a": 1}}}',
    b'{"status": "success", "data": {"resultType": "vector", "result": [{"value": [1e300, "1"]}]}}',
    b'{"status": "success", "data": {"resultType": "vector", "result": [5, "x"]}}',
    b'{"status": "success", "data": []}',
    b"[" * 100000 + b"]" * 100000,
)


def _prometheus_cases():
    for mode in MODES:
        bodies = PROMETHEUS_SHAPES if mode == "wrong_shape" else (b"",)
        for body in bodies:
            yield pytest.param(mode, body, id=f"{mode}-{body[:20].decode()}")


@pytest.mark.parametrize(("mode", "body"), list(_prometheus_cases()))
def test_prometheus_faults_are_sentences_within_the_bound(faulty_server, mode, body):
    from console.signals.prometheus import PrometheusClient, SignalError

    server = faulty_server(mode, body)

    async def ask():
        async with PrometheusClient(server.url, timeout=TIMEOUT) as client:
            return await client.query('service:error_rate:ratio{service="order-service"}')

    started = time.monotonic()
    with pytest.raises(SignalError) as caught:
        asyncio.run(ask())
    assert time.monotonic() - started < BOUND
    assert "Prometheus" in str(caught.value)


@pytest.mark.parametrize("mode", [m for m in MODES if m != "wrong_shape"] + ["wrong_shape"])
def test_health_check_faults_are_a_failed_check_within_the_bound(faulty_server, mode):
    from console.signals import health

    server = faulty_server(mode, b'{"status": [[[]]]}')

    async def check():
        session = health.new_session(4)
        try:
            return await health.check(session, f"{server.url}/health", timeout=TIMEOUT)
        finally:
            await session.close()

    started = time.monotonic()
    result = asyncio.run(check())
    assert time.monotonic() - started < BOUND
    assert result.ok is False
    assert result.status  # a short reason, never empty


def test_status_with_a_silent_prometheus_is_signals_unavailable_not_healthy(tmp_path, faulty_server):
    """The issue's first probe: prometheus.url at a server that never answers,
    on a drill failing 8 %: never `HEALTHY`, never exit 0."""
    from support import served_drill

    silent = faulty_server("silent")
    directory = tmp_path / "drill"
    with served_drill("bad-deploy", "--write-config", str(directory)):
        config = yaml.safe_load((directory / "config.yaml").read_text())
        config["prometheus"]["url"] = silent.url
        config["prometheus"]["timeout"] = TIMEOUT
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        result = _cli("status", "order-service", "--config", str(path), "--json", tmp_path=tmp_path)
        text = _cli("status", "order-service", "--config", str(path), tmp_path=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    [service] = json.loads(result.stdout)
    assert service["decision"]["action"] == "signals_unavailable"
    assert service["decision"]["unavailable"] == [{"signal": "error rate", "why": "query failed", "since": None}]
    assert any("Prometheus" in e and "did not answer" in e for e in service["errors"])
    assert text.returncode == 4
    assert "order-service: SIGNALS UNAVAILABLE" in text.stdout
    assert "HEALTHY" not in text.stdout


def test_status_when_nothing_answers_is_signals_unavailable_not_rollback_now(tmp_path, faulty_server):
    """The cluster, Prometheus and the health endpoint all silent: what a console
    that lost its network sees. A health check that got no answer is not proof
    the service is down while its pods cannot be read: SIGNALS UNAVAILABLE and
    exit 4, never ROLLBACK NOW with exit 0 (which an autopilot or a script would act on)."""
    silent = faulty_server("silent")
    path = _config(tmp_path, silent.url, silent.url)
    config = yaml.safe_load(path.read_text())
    config["services"][0]["health_url"] = f"{silent.url}/health"
    config["health"] = {"timeout": TIMEOUT}
    path.write_text(yaml.safe_dump(config))
    result = _cli("status", "--config", str(path), "--json", tmp_path=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    [service] = json.loads(result.stdout)
    assert service["decision"]["action"] == "signals_unavailable", service["decision"]
    assert {m["signal"] for m in service["decision"]["unavailable"]} >= {"pod counts", "error rate"}
    assert "not proof the service is down" in service["decision"]["reasons"][0]


# --- Slack and ECS -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_slack_faults_are_a_failed_send_within_the_bound(faulty_server, mode):
    from console.slack import SlackNotifier

    server = faulty_server(mode, b"[[[")
    notifier = SlackNotifier(f"{server.url}/services/T000/B000/SECRETPATH", timeout=TIMEOUT, retries=1,
                             backoff=0.01, sleep=lambda _s: None)
    started = time.monotonic()
    result = notifier.send({"text": "probe"})
    assert time.monotonic() - started < BOUND
    # An answer that starts with 200 means Slack took the message, whatever follows.
    assert result.ok is (mode in ("wrong_shape", "trickle", "huge"))
    if not result.ok:
        assert "Slack" in result.error and "SECRETPATH" not in result.error


@pytest.mark.parametrize(("mode", "body"), list(_mode_cases()))
def test_ecs_faults_are_sentences_within_the_bound(faulty_server, monkeypatch, mode, body):
    from console.platforms.ecs import EcsPlatform

    server = faulty_server(mode, body)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAULTSUITE000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fault-suite-secret")
    platform = EcsPlatform("order-service", "shop", region="us-east-1", endpoint_url=server.url,
                           timeout=TIMEOUT, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(PlatformError) as caught:
        platform.plan_rollback()
    assert time.monotonic() - started < BOUND * 2
    assert "ECS" in str(caught.value)
    assert "fault-suite-secret" not in str(caught.value)
    assert not [line for line in server.requests if "UpdateService" in line]
