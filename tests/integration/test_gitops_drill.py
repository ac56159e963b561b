"""The drill's Argo CD and Flux owners, typed at by the real kubectl.

The gitops-argocd and gitops-flux drills (and gitops-flux with a HelmRelease)
serve an Application / Kustomization / HelmRelease through the Kubernetes API; their simulated controllers put drift back after
5 simulated seconds unless paused the way the tools' own CLIs pause them.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from support import drill_scenario, require_binary, wait_until

from console.drill.server import DrillServer, write_kubeconfig
from console.drill.world import World

pytestmark = pytest.mark.integration

SPEED = 30.0
NAMESPACE = "shop"
IMAGE = "registry.example.com/order-service"
OWNERS = {"gitops-argocd": ("applications.argoproj.io", "argocd"),
          "gitops-flux": ("kustomizations.kustomize.toolkit.fluxcd.io", "flux-system"),
          "gitops-flux-helm": ("helmreleases.helm.toolkit.fluxcd.io", "flux-system")}
PAUSE = {
    "gitops-argocd": ("merge", '{"spec":{"syncPolicy":{"automated":{"enabled":false}}}}'),
    "gitops-flux": ("json", '[{"op":"replace","path":"/spec/suspend","value":true}]'),
    "gitops-flux-helm": ("merge", '{"spec":{"suspend":true}}'),
}


@dataclass
class Drill:
    world: World
    kubeconfig: Path
    cache: Path
    binary: str

    def kubectl(self, *args: str, namespace: str = NAMESPACE) -> str:
        result = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache),
             "--request-timeout=10s", "-n", namespace, *args],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def image(self) -> str:
        self.world.advance()
        deployment = self.world.store.get("deployments", NAMESPACE, "order-service")
        return deployment["spec"]["template"]["spec"]["containers"][0]["image"]

    def wait(self, check, what: str, simulated: float = 60.0) -> None:
        """Let the world run until `check()` holds, failing after `simulated` drill seconds."""
        until = self.world.now + timedelta(seconds=simulated)

        def happened() -> bool:
            if check():
                return True
            assert self.world.now < until, f"{what} did not happen within {simulated:g} simulated s"
            self.world.advance()
            return False

        wait_until(happened, what, timeout=simulated / SPEED + 30, interval=0.05)

    def run_for(self, simulated: float) -> None:
        """Let `simulated` drill seconds pass."""
        until = self.world.now + timedelta(seconds=simulated)
        self.wait(lambda: self.world.now >= until, f"{simulated} simulated seconds", simulated + 5)


@pytest.fixture(params=sorted(OWNERS))
def drill(request, tmp_path: Path) -> Iterator[Drill]:
    binary = require_binary("kubectl", "kubernetes-client")
    world = World(drill_scenario(request.param, tmp_path), speed=SPEED)
    server = DrillServer(world)
    server.start()
    try:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, namespace=NAMESPACE)
        drill = Drill(world, Path(kubeconfig), tmp_path / "kube-cache", binary)
        drill.scenario = request.param  # type: ignore[attr-defined]
        yield drill
    finally:
        server.stop()


def test_the_owner_is_served_and_discoverable(drill: Drill) -> None:
    resource, namespace = OWNERS[drill.scenario]
    table = drill.kubectl("get", resource, namespace=namespace).splitlines()
    if drill.scenario == "gitops-argocd":
        assert table[0].split() == ["NAME", "SYNC", "STATUS", "HEALTH", "STATUS", "AGE"]
        assert table[1].split()[:3] == ["order-service", "Synced", "Healthy"]
        app = json.loads(drill.kubectl("get", "app", "order-service", "-o", "json", namespace=namespace))
        history = app["status"]["history"]
        assert [h["id"] for h in history] == [0, 1, 2]
        assert app["status"]["sync"]["revision"] == history[-1]["revision"]
    elif drill.scenario == "gitops-flux":
        assert table[0].split()[:3] == ["NAME", "AGE", "READY"]
        assert table[1].split()[2] == "True"
        ks = json.loads(drill.kubectl("get", "ks", "order-service", "-o", "json", namespace=namespace))
        assert ks["status"]["lastAppliedRevision"].startswith("main@sha1:")
    else:
        assert table[0].split()[:3] == ["NAME", "AGE", "READY"]
        assert table[1].split()[2] == "True" and "Helm upgrade succeeded" in table[1]
        hr = json.loads(drill.kubectl("get", "hr", "order-service", "-o", "json", namespace=namespace))
        assert (hr["apiVersion"], hr["kind"]) == ("helm.toolkit.fluxcd.io/v2", "HelmRelease")
        assert hr["status"]["lastAppliedRevision"] == "1.2.3"
        assert [h["chartVersion"] for h in hr["status"]["history"]] == ["1.2.3", "1.2.2", "1.2.1"]
    labels = json.loads(drill.kubectl("get", "deployment", "order-service", "-o", "json"))["metadata"]
    assert ("argocd.argoproj.io/tracking-id" in labels.get("annotations", {})) == (drill.scenario == "gitops-argocd")
    if drill.scenario == "gitops-flux-helm":
        assert labels["labels"]["helm.toolkit.fluxcd.io/name"] == "order-service"
        assert labels["labels"]["helm.toolkit.fluxcd.io/namespace"] == "flux-system"


def test_rollout_undo_alone_is_reverted_by_the_controller(drill: Drill) -> None:
    drill.kubectl("rollout", "undo", "deployment/order-service")
    assert drill.image() == f"{IMAGE}:1.2.2"
    drill.wait(lambda: drill.image() == f"{IMAGE}:1.2.3", "the self-heal", simulated=30)
    drill.run_for(60)
    assert drill.image() == f"{IMAGE}:1.2.3"
    # The drill says why, and the controller's Event is there for `kubectl get events`.
    assert any("reverted drift of deployment/order-service" in note["text"] for note in drill.world.state()["notes"])
    _, namespace = OWNERS[drill.scenario]
    assert "order-service" in drill.kubectl("get", "events", namespace=namespace)


def test_paused_the_tools_way_the_undo_holds(drill: Drill) -> None:
    resource, namespace = OWNERS[drill.scenario]
    kind, patch = PAUSE[drill.scenario]
    drill.kubectl("patch", resource, "order-service", "--type", kind, "-p", patch, namespace=namespace)
    drill.kubectl("rollout", "undo", "deployment/order-service")
    drill.run_for(60)
    assert drill.image() == f"{IMAGE}:1.2.2"
    if drill.scenario == "gitops-argocd":
        sync = drill.kubectl("get", resource, "order-service", "-o", "jsonpath={.status.sync.status}",
                             namespace=namespace)
        assert sync == "OutOfSync"
