"""The runbook's kubectl commands, typed by the real kubectl at the drill world.

Each test starts a drill world on its own server, points a kubeconfig at it and
runs /usr/bin/kubectl as a subprocess, asserting on what kubectl prints and on
the world's state afterwards. The world runs fast (SPEED) so rollouts finish
in a second or two of wall time.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import require_binary, wait_until

from console.drill.scenario import load_scenario, parse_scenario
from console.drill.server import DrillServer, write_kubeconfig
from console.drill.world import World

pytestmark = pytest.mark.integration

# Simulated seconds per wall second: a 10 s readiness delay takes a third of a second.
SPEED = 30.0
SERVICE = "order-service"
NAMESPACE = "shop"
IMAGE = "registry.example.com/order-service"


def kubectl_binary() -> str:
    """The kubectl to test with; missing kubectl skips locally and fails in CI."""
    return require_binary("kubectl", "kubernetes-client")


@dataclass
class Drill:
    world: World
    kubeconfig: Path
    cache: Path
    binary: str

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the drill; with `check`, a non-zero exit fails the test."""
        result = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache),
             "--request-timeout=10s", "-n", NAMESPACE, *args],
            capture_output=True, text=True, timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result

    def deployment(self, name: str = SERVICE) -> dict:
        self.world.advance()
        return self.world.store.get("deployments", NAMESPACE, name)

    def image(self, name: str = SERVICE) -> str:
        return self.deployment(name)["spec"]["template"]["spec"]["containers"][0]["image"]

    def ready_pods(self, label: str = f"app={SERVICE}") -> list[dict]:
        self.world.advance()
        pods, _ = self.world.store.list("pods", NAMESPACE, label)
        return [
            pod for pod in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        ]


def start_drill(scenario, tmp_path: Path, speed: float = SPEED) -> Iterator[Drill]:
    binary = kubectl_binary()
    world = World(scenario, speed=speed)
    server = DrillServer(world)
    server.start()
    try:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, namespace=NAMESPACE)
        yield Drill(world, Path(kubeconfig), tmp_path / "kube-cache", binary)
    finally:
        server.stop()


@pytest.fixture
def drill(tmp_path: Path) -> Iterator[Drill]:
    yield from start_drill(load_scenario("bad-deploy"), tmp_path)


def rows(output: str) -> list[list[str]]:
    """kubectl's table output as rows of cells (header first)."""
    return [line.split() for line in output.strip().splitlines()]


# --- 1. Check current state ---------------------------------------------------


def test_get_deployment_wide(drill: Drill) -> None:
    out = drill.kubectl("get", "deployment", SERVICE, "-o", "wide").stdout
    header, row = rows(out)
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert row[:4] == [SERVICE, "3/3", "3", "3"]
    assert row[5:] == ["app", f"{IMAGE}:1.2.3", f"app={SERVICE}"]


def test_rollout_history_lists_revisions_and_change_causes(drill: Drill) -> None:
    out = drill.kubectl("rollout", "history", f"deployment/{SERVICE}").stdout
    assert rows(out)[1:] == [
        ["REVISION", "CHANGE-CAUSE"],
        ["1", "deploy", "1.2.1"],
        ["2", "deploy", "1.2.2"],
        ["3", "deploy", "1.2.3"],
    ]
    detail = drill.kubectl("rollout", "history", f"deployment/{SERVICE}", "--revision=2").stdout
    assert "with revision #2" in detail
    assert f"Image:\t{IMAGE}:1.2.2" in detail.replace("  ", "")


def test_output_formats(drill: Drill) -> None:
    as_json = json.loads(drill.kubectl("get", "deployment", SERVICE, "-o", "json").stdout)
    assert as_json["kind"] == "Deployment" and as_json["spec"]["replicas"] == 3
    as_yaml = drill.kubectl("get", "deployment", SERVICE, "-o", "yaml").stdout
    assert "deployment.kubernetes.io/revision: \"3\"" in as_yaml
    replicasets = rows(drill.kubectl("get", "replicasets").stdout)
    assert replicasets[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert sorted(row[1] for row in replicasets[1:]) == ["0", "0", "3"]


# --- 2-3. Roll back and watch ---------------------------------------------------


def test_undo_to_the_current_revision_is_skipped(drill: Drill) -> None:
    generation = drill.deployment()["metadata"]["generation"]
    out = drill.kubectl("rollout", "undo", f"deployment/{SERVICE}", "--to-revision=3").stdout
    assert "skipped rollback (current template already matches revision 3)" in out
    assert drill.deployment()["metadata"]["generation"] == generation


def test_undo_rolls_back_to_the_previous_revision(drill: Drill) -> None:
    out = drill.kubectl("rollout", "undo", f"deployment/{SERVICE}").stdout
    assert out.strip() == f"deployment.apps/{SERVICE} rolled back"
    assert drill.image() == f"{IMAGE}:1.2.2"

    status = drill.kubectl("rollout", "status", f"deployment/{SERVICE}", "--timeout=60s").stdout
    assert f'deployment "{SERVICE}" successfully rolled out' in status

    # The revision annotation moved: 1.2.2 is now revision 4 and 2 is gone.
    history = rows(drill.kubectl("rollout", "history", f"deployment/{SERVICE}").stdout)
    assert [row[0] for row in history[2:]] == ["1", "3", "4"]
    assert history[-1] == ["4", "deploy", "1.2.2"]
    ready = drill.ready_pods()
    assert len(ready) == 3
    assert {pod["spec"]["containers"][0]["image"] for pod in ready} == {f"{IMAGE}:1.2.2"}


def test_undo_to_a_specific_revision(drill: Drill) -> None:
    out = drill.kubectl("rollout", "undo", f"deployment/{SERVICE}", "--to-revision=1").stdout
    assert "rolled back" in out
    drill.kubectl("rollout", "status", f"deployment/{SERVICE}", "--timeout=60s")
    assert drill.image() == f"{IMAGE}:1.2.1"
    missing = drill.kubectl("rollout", "undo", f"deployment/{SERVICE}", "--to-revision=9", check=False)
    assert missing.returncode != 0 and "unable to find specified revision 9" in missing.stderr


def test_a_rollout_that_cannot_finish_exceeds_its_deadline(tmp_path: Path) -> None:
    # Fast enough that the 600 s progress deadline passes in about two seconds.
    for drill in start_drill(load_scenario("bad-deploy"), tmp_path, speed=300):
        drill.kubectl("set", "image", f"deployment/{SERVICE}", f"app={IMAGE}:1.2.9")
        status = drill.kubectl("rollout", "status", f"deployment/{SERVICE}", "--timeout=60s", check=False)
        assert status.returncode == 1
        assert f'deployment "{SERVICE}" exceeded its progress deadline' in status.stderr
        pods = rows(drill.kubectl("get", "pods", "-l", f"app={SERVICE}").stdout)
        assert "ImagePullBackOff" in [row[2] for row in pods[1:]]
        # The old pods keep serving while the new one cannot start.
        assert [row[1:3] for row in pods[1:]].count(["1/1", "Running"]) == 3


# --- 4. Verify pods -----------------------------------------------------------


def test_get_pods_and_their_logs(drill: Drill) -> None:
    pods = rows(drill.kubectl("get", "pods", "-l", f"app={SERVICE}").stdout)
    assert pods[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [row[1:3] for row in pods[1:]] == [["1/1", "Running"]] * 3
    logs = drill.kubectl("logs", "-l", f"app={SERVICE}", "--tail=50").stdout.splitlines()
    assert 3 < len(logs) <= 150
    assert any("upstream timeout calling inventory-service" in line for line in logs)


def test_endpoints_follow_ready_pods(drill: Drill) -> None:
    out = rows(drill.kubectl("get", "endpoints", SERVICE).stdout)
    assert out[0] == ["NAME", "ENDPOINTS", "AGE"]
    addresses = set(out[1][1].split(","))
    assert addresses == {f"{pod['status']['podIP']}:8080" for pod in drill.ready_pods()}


# --- Scale and set image --------------------------------------------------------


def test_scale_to_zero_and_back(drill: Drill) -> None:
    out = drill.kubectl("scale", f"deployment/{SERVICE}", "--replicas=0").stdout
    assert out.strip() == f"deployment.apps/{SERVICE} scaled"
    assert drill.deployment()["spec"]["replicas"] == 0
    drill.kubectl("rollout", "status", f"deployment/{SERVICE}", "--timeout=60s")
    assert "No resources found" in drill.kubectl("get", "pods", "-l", f"app={SERVICE}").stderr
    drill.kubectl("scale", f"deployment/{SERVICE}", "--replicas=3")
    drill.kubectl("rollout", "status", f"deployment/{SERVICE}", "--timeout=60s")
    assert len(drill.ready_pods()) == 3


def test_set_image_starts_a_new_revision(drill: Drill) -> None:
    out = drill.kubectl("set", "image", f"deployment/{SERVICE}", f"app={IMAGE}:1.2.4").stdout
    assert out.strip() == f"deployment.apps/{SERVICE} image updated"
    assert drill.image() == f"{IMAGE}:1.2.4"
    history = rows(drill.kubectl("rollout", "history", f"deployment/{SERVICE}").stdout)
    assert history[-1][0] == "4"


def test_scale_of_a_missing_deployment_fails(drill: Drill) -> None:
    result = drill.kubectl("scale", "deployment", f"{SERVICE}-canary", "--replicas=0", check=False)
    assert result.returncode != 0
    assert f'deployments.apps "{SERVICE}-canary" not found' in result.stderr


# --- Blue-green -----------------------------------------------------------------

BLUE_GREEN = {
    "name": "blue-green",
    "start": "2024-01-17T14:43:00Z",
    "services": [{
        "name": SERVICE, "namespace": NAMESPACE, "kind": "blue-green", "replicas": 2,
        "image": IMAGE,
        "history": [
            {"version": "1.2.2", "age": "6d", "environment": "blue"},
            {"version": "1.2.3", "age": "2m", "environment": "green"},
        ],
    }],
    "expect": {"action": "rollback_now"},
}


@pytest.fixture
def blue_green(tmp_path: Path) -> Iterator[Drill]:
    yield from start_drill(parse_scenario(BLUE_GREEN), tmp_path)


def test_blue_green_switch(blue_green: Drill) -> None:
    drill = blue_green
    live = drill.kubectl("get", "service", SERVICE, "-o", "jsonpath={.spec.selector.version}").stdout
    assert live == "green"
    out = drill.kubectl("patch", "service", SERVICE, "-p", '{"spec":{"selector":{"version":"blue"}}}').stdout
    assert out.strip() == f"service/{SERVICE} patched"
    again = drill.kubectl("patch", "service", SERVICE, "-p", '{"spec":{"selector":{"version":"blue"}}}').stdout
    assert "patched (no change)" in again
    blue_ips = {f"{p['status']['podIP']}:8080" for p in drill.ready_pods(f"app={SERVICE},version=blue")}
    endpoints = rows(drill.kubectl("get", "endpoints", SERVICE).stdout)[1][1]
    assert set(endpoints.split(",")) == blue_ips


# --- Canary ---------------------------------------------------------------------

CANARY = {
    "name": "canary",
    "start": "2024-01-17T14:43:00Z",
    "services": [{
        "name": SERVICE, "namespace": NAMESPACE, "kind": "canary", "replicas": 2, "canary_replicas": 1,
        "canary_weight": 20, "image": IMAGE,
        "history": [
            {"version": "1.2.2", "age": "6d"},
            {"version": "1.2.3", "age": "2m", "track": "canary"},
        ],
    }],
    "expect": {"action": "rollback_now"},
}

ZERO_CANARY = f"""
spec:
  http:
  - route:
    - destination:
        host: {SERVICE}
        subset: stable
      weight: 100
    - destination:
        host: {SERVICE}
        subset: canary
      weight: 0
"""


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Drill]:
    yield from start_drill(parse_scenario(CANARY), tmp_path)


def weights(drill: Drill) -> list[int]:
    vs = drill.world.store.get("virtualservices", NAMESPACE, SERVICE)
    return [route["weight"] for route in vs["spec"]["http"][0]["route"]]


@pytest.mark.parametrize("resource", ["virtualservice", "virtualservices.v1beta1.networking.istio.io"])
def test_canary_weight_to_zero_and_scale_down(canary: Drill, resource: str) -> None:
    drill = canary
    assert weights(drill) == [80, 20]
    out = drill.kubectl("patch", resource, SERVICE, "--type", "merge", "-p", ZERO_CANARY).stdout
    assert out.strip() == f"virtualservice.networking.istio.io/{SERVICE} patched"
    assert weights(drill) == [100, 0]
    out = drill.kubectl("scale", "deployment", f"{SERVICE}-canary", "--replicas=0").stdout
    assert out.strip() == f"deployment.apps/{SERVICE}-canary scaled"
    drill.kubectl("rollout", "status", f"deployment/{SERVICE}-canary", "--timeout=60s")
    assert drill.ready_pods(f"app={SERVICE},track=canary") == []
    short = drill.kubectl("get", "vs", SERVICE, "-o", "jsonpath={.spec.http[0].route[1].weight}").stdout
    assert short == "0"


# --- The official Python client -------------------------------------------------


def test_python_client_watch_and_guarded_patch(drill: Drill) -> None:
    from kubernetes import client, config, watch

    api_client = config.new_client_from_config(str(drill.kubeconfig))
    apps = client.AppsV1Api(api_client)
    deployment = apps.read_namespaced_deployment(SERVICE, NAMESPACE)
    stale = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
             {"op": "replace", "path": "/spec/replicas", "value": 1}]
    with pytest.raises(client.ApiException) as refused:
        apps.patch_namespaced_deployment(SERVICE, NAMESPACE, stale)
    assert refused.value.status == 422
    assert drill.deployment()["spec"]["replicas"] == 3

    listed = apps.list_namespaced_deployment(NAMESPACE, field_selector=f"metadata.name={SERVICE}")
    scale_later = threading.Timer(
        0.2, lambda: apps.patch_namespaced_deployment_scale(SERVICE, NAMESPACE, {"spec": {"replicas": 2}})
    )
    scale_later.start()
    seen = []
    stream = watch.Watch().stream(
        apps.list_namespaced_deployment, NAMESPACE, field_selector=f"metadata.name={SERVICE}",
        resource_version=listed.metadata.resource_version, timeout_seconds=10,
    )
    for event in stream:
        seen.append(event["object"].spec.replicas)
        if event["object"].spec.replicas == 2:
            break
    scale_later.join()
    assert seen[-1] == 2
    assert deployment.metadata.resource_version != drill.deployment()["metadata"]["resourceVersion"]


# --- The shipped blue-green and canary drills, by the runbook's commands -------------


def _wait_for(drill: Drill, check, what: str, seconds: float = 10.0) -> None:
    """Advance the (fast) world until `check()` holds; scrapes are 15 simulated s apart."""

    def advanced() -> bool:
        drill.world.advance()
        return check()

    wait_until(advanced, what, timeout=seconds)


def test_blue_green_drill_switched_back_to_blue_recovers(tmp_path: Path) -> None:
    for drill in start_drill(load_scenario("blue-green"), tmp_path):
        assert drill.world.health("checkout")[0] == 503
        assert drill.kubectl("get", "service", "checkout", "-o", "jsonpath={.spec.selector.version}").stdout == "green"
        drill.kubectl("patch", "service", "checkout", "-p", '{"spec":{"selector":{"version":"blue"}}}')
        endpoints = set(rows(drill.kubectl("get", "endpoints", "checkout").stdout)[1][1].split(","))
        assert endpoints == {f"{p['status']['podIP']}:8080" for p in drill.ready_pods("app=checkout,version=blue")}
        assert drill.world.health("checkout") == (200, {"status": "healthy", "versions": ["1.4.0"]})
        _wait_for(drill, lambda: drill.world.samples("checkout")[-1].error_rate == pytest.approx(0.001),
                  "checkout's error rate back to 0.1 %")


def test_canary_drill_weight_zero_and_scaled_down_recovers(tmp_path: Path) -> None:
    zero = ZERO_CANARY.replace(SERVICE, "search")
    for drill in start_drill(load_scenario("canary"), tmp_path):
        assert drill.world.samples("search")[-1].error_rate > 0.05
        drill.kubectl("patch", "virtualservice", "search", "--type", "merge", "-p", zero)
        drill.kubectl("scale", "deployment", "search-canary", "--replicas=0")
        drill.kubectl("rollout", "status", "deployment/search-canary", "--timeout=60s")
        assert drill.ready_pods("app=search,track=canary") == []
        assert len(drill.ready_pods("app=search,track=stable")) == 4
        _wait_for(drill, lambda: drill.world.samples("search")[-1].error_rate == pytest.approx(0.001),
                  "search's error rate back to 0.1 %")
