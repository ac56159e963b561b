"""The refresh cycle's Kubernetes read on its event loop (`observe_async`,
`KubeConnection.get_async`, aiohttp) against the client's own read in a
thread (`observe`): the same answer, the same credentials and TLS, the same
sentences when it fails. The faults (no answer, trickle, garbage...) are in
test_faults.py; here the live drill, an HTTPS API server that wants a client
certificate, an exec credential plugin."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest_adapters import observe_on_a_loop, start_drill
from support import https_server, self_signed_certificate

from console.platforms.base import Forbidden, NotFound, PlatformError
from console.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.integration

DEPLOYMENT = {
    "kind": "Deployment",
    "metadata": {"name": "order-service", "namespace": "shop", "generation": 1},
    "spec": {"replicas": 3},
    "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2},
}


def outcome(call):
    try:
        return call()
    except PlatformError as err:
        return type(err), str(err)


def without_read_time(pods):
    return replace(pods, checked_at=None)


@pytest.fixture
def drill():
    running = start_drill()
    running.world.clock.set_speed(0)  # nothing moves between the two reads
    try:
        yield running
    finally:
        running.stop()


def _platform(drill, deployment: str = "order-service") -> KubernetesPlatform:
    return KubernetesPlatform(deployment, "shop", deployment, kubeconfig=str(drill.kubeconfig_path), timeout=5)


def test_both_reads_see_the_same_deployment_and_history(drill):
    platform = _platform(drill)
    pods, known = observe_on_a_loop(platform)
    assert pods.desired == 3 and pods.error is None
    assert without_read_time(pods) == without_read_time(platform.observe(False)[0])
    # The history from the read made on the loop, as from a read of its own.
    assert platform.observe(True, known)[1] == platform.observe(True)[1]
    assert [r.number for r in platform.observe(True, known)[1]] == [3, 2, 1]


def test_not_found_and_forbidden_are_the_same_sentences_both_ways(drill):
    missing = _platform(drill, "no-such-service")
    assert outcome(lambda: observe_on_a_loop(missing)) == outcome(lambda: missing.observe(False))
    assert outcome(lambda: observe_on_a_loop(missing))[0] is NotFound
    drill.server.kube.forbid("get", "deployments")
    platform = _platform(drill)
    assert outcome(lambda: observe_on_a_loop(platform)) == outcome(lambda: platform.observe(False))
    assert outcome(lambda: observe_on_a_loop(platform))[0] is Forbidden


# --- credentials and TLS -----------------------------------------------------------


def _kubeconfig(path: Path, server: str, *, user: dict, cluster: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "shop"}}],
    }))
    return path


def _answer(path: str) -> tuple[int, bytes]:
    if path == "/apis/apps/v1/namespaces/shop/deployments/order-service":
        return 200, json.dumps(DEPLOYMENT).encode()
    return 404, b'{"kind": "Status", "message": "not here"}'


def test_the_cluster_ca_the_client_certificate_and_the_token_are_used(tmp_path):
    (tmp_path / "client").mkdir()
    client_cert, client_key = self_signed_certificate(tmp_path / "client")
    seen: list = []
    with https_server(tmp_path, _answer, seen=seen, client_ca=client_cert) as (url, server_cert):
        user = {"token": "t0ken-from-kubeconfig", "client-certificate": client_cert, "client-key": client_key}
        kubeconfig = _kubeconfig(tmp_path / "kubeconfig", url, user=user, cluster={"certificate-authority": server_cert})
        platform = KubernetesPlatform("order-service", "shop", "order-service", kubeconfig=str(kubeconfig), timeout=5)
        pods, _ = observe_on_a_loop(platform)
        assert (pods.desired, pods.ready, pods.error) == (3, 2, None)
        [(path, headers)] = seen
        assert path == "/apis/apps/v1/namespaces/shop/deployments/order-service"
        assert headers["Authorization"] == "Bearer t0ken-from-kubeconfig"
        assert headers["Accept"] == "application/json"
        assert headers["User-Agent"].startswith("OpenAPI-Generator/")  # the client's own, as its reads send

        # Without the client certificate the server refuses: a sentence, the same as the client's.
        anonymous = _kubeconfig(tmp_path / "anonymous", url, user={"token": "t"}, cluster={"certificate-authority": server_cert})
        platform = KubernetesPlatform("order-service", "shop", "order-service", kubeconfig=str(anonymous), timeout=5)
        failed = outcome(lambda: observe_on_a_loop(platform))
        assert isinstance(failed, tuple) and "Cannot reach the Kubernetes API" in failed[1], failed

        # A server the kubeconfig's CA did not sign is refused (never read unverified).
        untrusted = _kubeconfig(tmp_path / "untrusted", url, user=user)
        platform = KubernetesPlatform("order-service", "shop", "order-service", kubeconfig=str(untrusted), timeout=5)
        assert outcome(lambda: observe_on_a_loop(platform)) == outcome(lambda: platform.observe(False))
        assert "the TLS handshake failed" in outcome(lambda: observe_on_a_loop(platform))[1]
        assert len(seen) == 1


EXEC_PLUGIN = """
import json
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": "t0ken-from-exec"}}))
"""


def test_an_exec_credential_plugin_gives_the_token(tmp_path):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(EXEC_PLUGIN)
    seen: list = []
    with https_server(tmp_path, _answer, seen=seen) as (url, server_cert):
        user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                         "args": [str(plugin)], "interactiveMode": "Never"}}
        kubeconfig = _kubeconfig(tmp_path / "kubeconfig", url, user=user, cluster={"certificate-authority": server_cert})
        platform = KubernetesPlatform("order-service", "shop", "order-service", kubeconfig=str(kubeconfig), timeout=5)
        pods, _ = observe_on_a_loop(platform)
        assert pods.desired == 3
        assert seen[-1][1]["Authorization"] == "Bearer t0ken-from-exec"


EXPIRING_PLUGIN = """
import json, sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
issued = Path(sys.argv[1])
count = int(issued.read_text()) + 1 if issued.exists() else 1
issued.write_text(str(count))
# Expiring within the client's 5-minute margin: its hook asks for a new token each time it runs.
expiry = (datetime.now(timezone.utc) + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": f"t{count}", "expirationTimestamp": expiry}}))
"""


def test_a_token_that_expired_since_its_last_refresh_is_refreshed_when_refused(tmp_path):
    """The loop's reads ask the token's hook every TOKEN_REFRESH_SECONDS, not
    before each request: a token that expires meanwhile is refused (401),
    refreshed through the hook and the read asked once more."""
    plugin = tmp_path / "plugin.py"
    plugin.write_text(EXPIRING_PLUGIN)
    seen: list = []
    expired: set[str] = set()

    def answer(path: str) -> tuple[int, bytes]:
        if seen[-1][1]["Authorization"] in expired:
            return 401, b'{"kind": "Status", "message": "Unauthorized"}'
        return _answer(path)

    with https_server(tmp_path, answer, seen=seen) as (url, server_cert):
        user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                         "args": [str(plugin), str(tmp_path / "issued")], "interactiveMode": "Never"}}
        kubeconfig = _kubeconfig(tmp_path / "kubeconfig", url, user=user, cluster={"certificate-authority": server_cert})
        platform = KubernetesPlatform("order-service", "shop", "order-service", kubeconfig=str(kubeconfig), timeout=5)
        assert observe_on_a_loop(platform)[0].desired == 3
        expired.add(seen[-1][1]["Authorization"])  # the token it holds expires at the server
        assert observe_on_a_loop(platform)[0].desired == 3
        sent = [headers["Authorization"] for _, headers in seen]
        assert sent[-3] == sent[-2] != sent[-1], sent  # refused once, then the refreshed token
        assert sent[-1] not in expired
