"""A rollback that sticks: `rollback-console rollback` against the gitops-argocd
and gitops-flux drills over HTTP, with the real kubectl beside it.

The console pauses the owner the way its own tools do, rolls back, checks the
rollback held; a minute of drill time later 1.2.2 still runs, the owner is
still paused, and the checklist says to turn it back on. `kubectl rollout
undo` alone on the same drill is put back by the simulated controller.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from support import drill_scenario, require_binary, wait_until

from console.drill import runner
from console.drill.scenario import load_scenario

pytestmark = pytest.mark.integration

SPEED = 30.0
IMAGE = "registry.example.com/order-service"
OWNER = {"gitops-argocd": ("applications", "argocd"), "gitops-flux": ("kustomizations", "flux-system"),
         "gitops-flux-helm": ("helmreleases", "flux-system")}


@pytest.fixture(params=sorted(OWNER))
def drill(request, tmp_path: Path) -> Iterator[runner.RunningDrill]:
    running = runner.start(drill_scenario(request.param, tmp_path), speed=SPEED, directory=tmp_path / "drill",
                           start_at=datetime.now(timezone.utc).replace(microsecond=0))
    config = yaml.safe_load(running.config_path.read_text())
    config["gitops"] = {"hold_seconds": 1}  # 30 drill seconds: six self-heal timeouts
    running.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    running.scenario_name = request.param  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.stop()


def image(drill) -> str:
    drill.world.advance()
    deployment = drill.world.store.get("deployments", "shop", "order-service")
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def owner(drill) -> dict:
    resource, namespace = OWNER[drill.scenario_name]
    drill.world.advance()
    return drill.world.store.get(resource, namespace, "order-service")


def run_for(drill, simulated: float) -> None:
    """Let `simulated` drill seconds pass (waiting on the drill's clock)."""
    until = drill.world.now + timedelta(seconds=simulated)

    def passed() -> bool:
        if drill.world.now >= until:
            return True
        drill.world.advance()
        return False

    wait_until(passed, "the drill clock to move", timeout=simulated / SPEED + 30, interval=0.05)


def console(drill, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "console", *args, "--config", str(drill.config_path)],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, env=env)


def test_rollback_pauses_the_owner_and_sticks(drill, tmp_path: Path) -> None:
    assert image(drill) == f"{IMAGE}:1.2.3"
    result = console(drill, "rollback", "order-service", "--reason", "errors 8% after the sync", "--yes",
                     "--timeout", "120", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "held:" in result.stdout
    run_for(drill, 60)
    assert image(drill) == f"{IMAGE}:1.2.2"
    spec = owner(drill)["spec"]
    if drill.scenario_name == "gitops-argocd":
        assert spec["syncPolicy"]["automated"]["enabled"] is False
        assert "Re-enable automated sync of Argo CD Application argocd/order-service" in result.stdout
    else:
        assert spec["suspend"] is True
        kind = "HelmRelease" if drill.scenario_name == "gitops-flux-helm" else "Kustomization"
        assert f"Resume Flux {kind} flux-system/order-service" in result.stdout
    exported = console(drill, "export", "--latest", tmp_path=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "paused so that the rollback sticks" in exported.stdout
    assert "Revert or fix the commit" in exported.stdout

    # Left paused past gitops.max_paused_hours (24), the escalation names it.
    from console.clock import FrozenClock
    from console.config import load
    from console.session import Session
    from console.store import Store

    with Store(drill.config_path.parent / "drill-incidents.db") as store:  # the written config's incident.store
        later = Session(load(drill.config_path), store,
                        clock=FrozenClock(datetime.now(timezone.utc) + timedelta(hours=25)))
        escalation = later.escalation("order-service")
        assert escalation.level >= 2 and "has stayed paused for more than 24 hours" in escalation.why


def test_rollout_undo_alone_is_put_back(drill) -> None:
    kubectl = require_binary("kubectl", "kubernetes-client")
    subprocess.run([kubectl, "--kubeconfig", str(drill.kubeconfig_path), "-n", "shop", "rollout", "undo",
                    "deployment/order-service"], check=True, capture_output=True, timeout=60)
    assert image(drill) == f"{IMAGE}:1.2.2"
    run_for(drill, 60)
    assert image(drill) == f"{IMAGE}:1.2.3"


def test_a_forbidden_pause_is_refused_by_the_gate(drill, tmp_path: Path) -> None:
    resource, _ = OWNER[drill.scenario_name]
    drill.server.kube.forbid("patch", resource)
    result = console(drill, "rollback", "order-service", "--reason", "x", "--yes", tmp_path=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot be paused" in result.stdout and "Forbidden" in result.stdout
    assert image(drill) == f"{IMAGE}:1.2.3"


def test_an_app_of_apps_parent_is_paused_first_and_an_unreachable_one_refuses(tmp_path: Path) -> None:
    from console.gate import GitOpsView
    from console.platforms.kubernetes import KubernetesPlatform

    data = load_scenario("gitops-argocd").model_dump(mode="json", exclude_unset=True)
    data["services"][0]["gitops"]["parent"] = "shop-apps"
    from console.drill.scenario import parse_scenario

    running = runner.start(parse_scenario(data), speed=SPEED, directory=tmp_path / "drill")
    try:
        platform = KubernetesPlatform("order-service", "shop", "order-service",
                                      kubeconfig=str(running.kubeconfig_path), gitops_hold=0.5)
        plan = platform.plan_rollback()
        assert plan.owner.parent == "argocd/shop-apps" and plan.owner.pause_problem == ""
        assert [c.target.rsplit("/", 1)[-1] for c in plan.pre_calls] == ["shop-apps", "order-service"]
        progress = [p.message for p in platform.execute(plan, timeout=120)]
        assert "held:" in progress[-1]
        running.world.store.delete("applications", "argocd", "shop-apps")
        owner = platform.plan_rollback(to_revision=1).owner
        assert "its app-of-apps parent argocd/shop-apps cannot be reached" in owner.pause_problem
        assert GitOpsView(owner.ref, owner.self_healing, owner.pause_problem).pause_problem
    finally:
        running.stop()


def test_the_gitops_native_way_syncs_the_previous_revision(tmp_path: Path) -> None:
    running = runner.start(load_scenario("gitops-argocd"), speed=SPEED, directory=tmp_path / "drill",
                           start_at=datetime.now(timezone.utc).replace(microsecond=0))
    running.scenario_name = "gitops-argocd"  # type: ignore[attr-defined]
    try:
        config = yaml.safe_load(running.config_path.read_text())
        config["gitops"] = {"hold_seconds": 1, "method": "revision"}
        running.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        previous = owner(running)["status"]["history"][-2]["revision"]
        result = console(running, "rollback", "order-service", "--reason", "errors 8%", "--yes", "--timeout", "120",
                         tmp_path=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "argocd app rollback order-service" in result.stdout and "held:" in result.stdout
        run_for(running, 60)
        assert image(running) == f"{IMAGE}:1.2.2"
        app = owner(running)
        assert app["status"]["sync"]["revision"] == previous
        assert app["status"]["operationState"]["phase"] == "Succeeded"
        assert app["spec"]["syncPolicy"]["automated"]["enabled"] is False
    finally:
        running.stop()
