"""The console and the runbook's kubectl commands end in the same objects.

For each operation two identical drill worlds are started: the console's
platform does the operation on one, the real kubectl types the runbook's
commands at the other. Once both worlds have settled, their objects
(pod templates, revision annotations, replicas, selectors, VirtualService
weights, pods per ReplicaSet) must be equal, apart from what the apiserver
generates (timestamps, uids, resourceVersions, pod names and IPs).
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import require_binary

from console.drill.scenario import load_scenario
from console.drill.server import DrillServer, write_kubeconfig
from console.drill.world import World
from console.platforms.bluegreen import BlueGreenPlatform
from console.platforms.canary import CanaryPlatform
from console.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.integration

SPEED = 100.0
NAMESPACE = "shop"
# Simulated seconds both worlds run after the operation, so every rollout settles.
SETTLE_SECONDS = 900
VOLATILE_METADATA = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "selfLink")
VOLATILE_CONDITION_FIELDS = ("lastUpdateTime", "lastTransitionTime", "lastProbeTime")


def kubectl_binary() -> str:
    return require_binary("kubectl", "kubernetes-client")


@dataclass
class Served:
    world: World
    server: DrillServer
    kubeconfig: Path
    cache: Path

    def kubectl(self, *args: str) -> str:
        result = subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache),
             "--request-timeout=10s", "-n", NAMESPACE, *args],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result.stdout


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[Callable[[str], tuple[Served, Served]]]:
    """A factory of two identical served worlds of a shipped scenario."""
    started: list[DrillServer] = []

    def make(scenario_name: str) -> tuple[Served, Served]:
        scenario = load_scenario(scenario_name)
        pair = []
        for side in ("console", "kubectl"):
            world = World(scenario, speed=SPEED)
            server = DrillServer(world).start()
            started.append(server)
            kubeconfig = write_kubeconfig(tmp_path / side / "kubeconfig", server.url, NAMESPACE)
            pair.append(Served(world, server, Path(kubeconfig), tmp_path / side / "cache"))
        return pair[0], pair[1]

    try:
        yield make
    finally:
        for server in started:
            server.stop()


def _prune(value: object) -> object:
    """Empty maps and lists dropped: a real apiserver stores `resources: {}`
    for both paths (Go structs), the drill stores what it was sent, and
    apimachinery's semantic equality treats empty and absent alike."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _clean(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    for key in VOLATILE_METADATA:
        obj["metadata"].pop(key, None)
    for condition in (obj.get("status") or {}).get("conditions") or []:
        for key in VOLATILE_CONDITION_FIELDS:
            condition.pop(key, None)
    return _prune(obj)


def end_state(world: World) -> dict:
    """The world's objects after it settled, without what the server generates."""
    world.clock.advance(SETTLE_SECONDS)
    world.advance()
    store = world.store

    def items(resource: str) -> list[dict]:
        return store.list(resource, NAMESPACE)[0]

    pods = sorted(
        (
            next((ref["name"] for ref in pod["metadata"].get("ownerReferences") or []), ""),
            tuple(c["image"] for c in pod["spec"]["containers"]),
            pod["metadata"]["labels"].get("pod-template-hash", ""),
            pod["status"].get("phase", ""),
        )
        for pod in items("pods")
    )
    endpoints = {
        e["metadata"]["name"]: sum(len(s.get("addresses") or []) for s in e.get("subsets") or [])
        for e in items("endpoints")
    }
    return {
        "deployments": {d["metadata"]["name"]: _clean(d) for d in items("deployments")},
        "replicasets": {
            rs["metadata"]["name"]: {
                k: v for k, v in _clean(rs).items() if k != "metadata"
            } | {"annotations": rs["metadata"].get("annotations"), "labels": rs["metadata"].get("labels")}
            for rs in items("replicasets")
        },
        "services": {s["metadata"]["name"]: _clean(s)["spec"] for s in items("services")},
        "virtualservices": {v["metadata"]["name"]: _clean(v)["spec"] for v in items("virtualservices")},
        "pods": pods,
        "endpoints": endpoints,
    }


def assert_same_end_state(console: Served, kubectl: Served) -> dict:
    ours, theirs = end_state(console.world), end_state(kubectl.world)
    for kind in ours:
        assert ours[kind] == theirs[kind], (
            f"{kind} differ between the console's path and kubectl's: {_differences(ours[kind], theirs[kind])}"
        )
    return ours


def _differences(ours: object, theirs: object, path: str = "") -> list[str]:
    """Where two JSON-like values differ, as 'path: ours != theirs' lines."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = []
        for key in sorted(set(ours) | set(theirs), key=str):
            found += _differences(ours.get(key), theirs.get(key), f"{path}.{key}")
        return found
    return [] if ours == theirs else [f"{path}: {ours!r} != {theirs!r}"]


def _deployment(served: Served, name: str = "order-service") -> KubernetesPlatform:
    return KubernetesPlatform(name, NAMESPACE, name, kubeconfig=str(served.kubeconfig), clock=served.world.clock)


# --- Kubernetes deployments ---------------------------------------------------------


def test_rollout_undo(twins) -> None:
    console, kubectl = twins("bad-deploy")
    steps = list(_deployment(console).execute(_deployment(console).plan_rollback(), timeout=900))
    assert steps[-1].done and not steps[-1].failed

    kubectl.kubectl("rollout", "undo", "deployment/order-service")
    kubectl.kubectl("rollout", "status", "deployment/order-service", "--timeout=60s")

    state = assert_same_end_state(console, kubectl)
    template = state["deployments"]["order-service"]["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "registry.example.com/order-service:1.2.2"
    assert sorted(
        rs["annotations"]["deployment.kubernetes.io/revision"] for rs in state["replicasets"].values()
    ) == ["1", "3", "4"]


def test_rollout_undo_to_revision(twins) -> None:
    console, kubectl = twins("bad-deploy")
    platform = _deployment(console)
    steps = list(platform.execute(platform.plan_rollback(to_revision=1), timeout=900))
    assert steps[-1].done and not steps[-1].failed

    kubectl.kubectl("rollout", "undo", "deployment/order-service", "--to-revision=1")
    kubectl.kubectl("rollout", "status", "deployment/order-service", "--timeout=60s")

    state = assert_same_end_state(console, kubectl)
    template = state["deployments"]["order-service"]["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "registry.example.com/order-service:1.2.1"


def test_scale_to_zero_and_back(twins) -> None:
    console, kubectl = twins("bad-deploy")
    platform = _deployment(console)
    assert platform.scale(0) == 3
    frozen = end_state(console.world)
    assert frozen["deployments"]["order-service"]["spec"]["replicas"] == 0
    assert frozen["pods"] == []
    assert platform.scale(3) == 0

    kubectl.kubectl("scale", "deployment/order-service", "--replicas=0")
    end_state(kubectl.world)
    kubectl.kubectl("scale", "deployment/order-service", "--replicas=3")

    state = assert_same_end_state(console, kubectl)
    assert state["deployments"]["order-service"]["spec"]["replicas"] == 3
    assert len(state["pods"]) == 3


# --- Blue-green and canary ------------------------------------------------------------


def test_blue_green_switch(twins) -> None:
    console, kubectl = twins("blue-green")
    platform = BlueGreenPlatform("checkout", NAMESPACE, kubeconfig=str(console.kubeconfig), clock=console.world.clock)
    steps = list(platform.execute(platform.plan_rollback()))
    assert steps[-1].done and not steps[-1].failed

    assert kubectl.kubectl("get", "service", "checkout", "-o", "jsonpath={.spec.selector.version}") == "green"
    kubectl.kubectl("patch", "service", "checkout", "-p", '{"spec":{"selector":{"version":"blue"}}}')
    kubectl.kubectl("get", "endpoints", "checkout")

    state = assert_same_end_state(console, kubectl)
    assert state["services"]["checkout"]["selector"] == {"app": "checkout", "version": "blue"}
    assert state["endpoints"]["checkout"] == 3


RUNBOOK_CANARY_PATCH = """
spec:
  http:
  - route:
    - destination:
        host: search
        subset: stable
      weight: 100
    - destination:
        host: search
        subset: canary
      weight: 0
"""


def test_canary_abort(twins) -> None:
    console, kubectl = twins("canary")
    platform = CanaryPlatform("search", NAMESPACE, kubeconfig=str(console.kubeconfig), clock=console.world.clock)
    steps = list(platform.execute(platform.plan_rollback()))
    assert steps[-1].done and not steps[-1].failed

    kubectl.kubectl("patch", "virtualservice", "search", "--type", "merge", "-p", RUNBOOK_CANARY_PATCH)
    kubectl.kubectl("scale", "deployment", "search-canary", "--replicas=0")

    state = assert_same_end_state(console, kubectl)
    route = state["virtualservices"]["search"]["http"][0]["route"]
    assert [(r["destination"]["subset"], r["weight"]) for r in route] == [("stable", 100), ("canary", 0)]
    assert state["deployments"]["search-canary"]["spec"]["replicas"] == 0
    assert not [p for p in state["pods"] if p[0].startswith("search-canary-")]
