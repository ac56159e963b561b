"""BlueGreenPlatform against the drill world's blue-green scenario over HTTP:
checkout-blue runs 1.4.0, checkout-green 1.5.0 (failing), Service checkout
selects version=green. Both Deployments were created with 1.3.2 and changed
once since, so each carries revision 2 (as `kubectl rollout history` shows)."""

from __future__ import annotations

import json
import subprocess

import pytest
from support import require_binary

from conftest_adapters import start_drill

from console.platforms.base import Conflict, Forbidden, NotFound, Platform, PlatformError, Usage
from console.model import ColourRevision
from console.platforms.bluegreen import BlueGreenPlatform

SERVICE_PATH = "/api/v1/namespaces/shop/services/checkout"
IMAGE = "registry.example.com/checkout:{}"


@pytest.fixture
def drill():
    running = start_drill(scenario="blue-green")
    try:
        yield running
    finally:
        running.stop()


def _platform(drill, **kwargs) -> BlueGreenPlatform:
    return BlueGreenPlatform(
        "checkout", "shop", kubeconfig=str(drill.kubeconfig_path), clock=drill.world.clock, **kwargs
    )


def _selector(drill) -> dict:
    drill.world.advance()
    return drill.world.store.get("services", "shop", "checkout")["spec"]["selector"]


def _scale_world(drill, deployment: str, replicas: int) -> None:
    """Move the world behind the platform's back, as another engineer would."""
    from kubernetes import client, config

    apps = client.AppsV1Api(config.new_client_from_config(str(drill.kubeconfig_path)))
    apps.patch_namespaced_deployment_scale(deployment, "shop", {"spec": {"replicas": replicas}})
    drill.world.clock.advance(60)
    drill.world.advance()


def _set_image(drill, deployment: str, version: str) -> None:
    """Deploy `version` to one colour behind the platform's back: its Deployment's revision goes up."""
    from kubernetes import client, config

    apps = client.AppsV1Api(config.new_client_from_config(str(drill.kubeconfig_path)))
    apps.patch_namespaced_deployment(deployment, "shop", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": IMAGE.format(version)}]}}}})
    drill.world.clock.advance(60)
    drill.world.advance()


def test_reads_the_live_colour_history_and_health(drill):
    platform = _platform(drill)
    assert isinstance(platform, Platform)
    assert platform.active_colour() == "green"

    routing = platform.routing()
    assert routing.kind == "blue-green"
    assert routing.active == "green"
    assert routing.weights == (("blue", 0), ("green", 100))
    assert str(routing) == "blue 0 / green 100"
    assert routing.replicas == (("checkout-blue", 3), ("checkout-green", 3))

    history = platform.history()
    # Each colour's number is its Deployment's own revision, labelled with the colour.
    assert [(r.number, r.versions, r.current, r.ref, r.label) for r in history] == [
        (2, ("1.5.0",), True, "green (deployment/checkout-green)", "green · revision 2"),
        (2, ("1.4.0",), False, "blue (deployment/checkout-blue)", "blue · revision 2"),
    ]
    assert history[0].change_cause == "deploy 1.5.0 to green, switch"
    health = platform.health()
    assert (health.desired, health.ready) == (3, 3)
    assert {p.images for p in platform.pods()} == {(IMAGE.format("1.5.0"),)}


def test_plan_is_the_runbooks_selector_patch_with_a_version_precondition(drill):
    platform = _platform(drill)
    version = drill.world.store.get("services", "shop", "checkout")["metadata"]["resourceVersion"]

    plan = platform.plan_rollback()

    assert (plan.platform, plan.from_revision, plan.to_revision) == ("blue-green", 2, 2)
    assert plan.summary.startswith("green · revision 2 → blue · revision 2: Switch service/checkout")
    assert (plan.from_versions, plan.to_versions) == (("1.5.0",), ("1.4.0",))
    assert plan.resource_version == version
    (call,) = plan.calls
    assert (call.method, call.target) == ("PATCH", SERVICE_PATH)
    assert json.loads(call.body) == {"metadata": {"resourceVersion": version}, "spec": {"selector": {"version": "blue"}}}
    assert "kubectl patch service checkout -p '{\"spec\":{\"selector\":{\"version\":\"blue\"}}}'" in plan.summary
    assert _selector(drill)["version"] == "green"  # planning changes nothing

    # Both colours carry revision 2: the number alone does not say which; the console asks for the colour.
    with pytest.raises(Usage) as caught:
        platform.plan_rollback(to_revision=2)
    assert str(caught.value) == (
        "checkout: revision 2 is ambiguous: both blue and green carry it (blue = revision 2, green = revision 2; "
        "each colour's Deployment numbers its own revisions). Choose the colour: --to-revision blue:2 or "
        "--to-revision green:2; or roll back without a revision number to switch to the other colour than the "
        "live one."
    )
    with pytest.raises(NotFound, match="checkout has no revision 3; its colours are blue = revision 2, green = revision 2"):
        platform.plan_rollback(to_revision=3)


def test_a_revision_number_addresses_the_colour_whose_deployment_carries_it(drill):
    _set_image(drill, "checkout-blue", "1.4.1")  # blue's Deployment goes to revision 3
    platform = _platform(drill)

    assert [(r.label, r.versions) for r in platform.history()] == [
        ("blue · revision 3", ("1.4.1",)), ("green · revision 2", ("1.5.0",))]
    plan = platform.plan_rollback(to_revision=3)
    assert (plan.from_revision, plan.to_revision, plan.to_versions) == (2, 3, ("1.4.1",))
    assert json.loads(plan.calls[0].body)["spec"]["selector"] == {"version": "blue"}
    assert plan.summary.startswith("green · revision 2 → blue · revision 3: ")
    # Revision 2 is now green's alone, and green is live: kubectl would say "(no change)", the console skips.
    same = platform.plan_rollback(to_revision=2)
    assert same.skip_reason == "skipped switch (service/checkout already sends traffic to green)"
    assert platform.colour_template("blue")["spec"]["containers"][0]["image"] == IMAGE.format("1.4.1")
    assert platform.template(3) == platform.colour_template("blue")

    steps = list(platform.execute(plan))
    assert steps[-1].done and not steps[-1].failed and _selector(drill)["version"] == "blue"


def test_a_colour_names_the_target_where_the_number_is_both_colours(drill):
    platform = _platform(drill)

    for wanted in (ColourRevision("blue", 2), ColourRevision("blue")):
        plan = platform.plan_rollback(to_revision=wanted)
        assert json.loads(plan.calls[0].body)["spec"]["selector"] == {"version": "blue"}
        assert (plan.from_colour, plan.to_colour, plan.from_label, plan.to_label) == (
            "green", "blue", "green · revision 2", "blue · revision 2")
        assert plan.target == ColourRevision("blue", 2)
    # The live colour: nothing to switch, as kubectl's "(no change)".
    assert platform.plan_rollback(to_revision=ColourRevision("green", 2)).skip_reason == (
        "skipped switch (service/checkout already sends traffic to green)")

    with pytest.raises(Usage) as caught:
        platform.plan_rollback(to_revision=ColourRevision("blue", 1))
    assert str(caught.value).startswith(
        "checkout: blue's Deployment is at revision 2, not 1 (blue = revision 2, green = revision 2). A blue-green "
        "rollback switches the traffic to a colour as its Deployment is now; it cannot bring back an older "
        "revision of one colour. Type --to-revision blue:2 to switch to blue · revision 2, or roll that colour's "
        "Deployment back first (`kubectl rollout undo deployment/checkout-blue --to-revision=1`).")
    with pytest.raises(Usage, match="checkout has no colour purple; its colours are blue = revision 2, green = "
                                    "revision 2. Type --to-revision with one of them"):
        platform.plan_rollback(to_revision=ColourRevision("purple"))

    # The plan made by colour runs as any other: the endpoints end up blue's.
    steps = list(platform.execute(platform.plan_rollback(to_revision=ColourRevision("blue", 2))))
    assert steps[-1].done and not steps[-1].failed and _selector(drill)["version"] == "blue"


def test_a_plan_is_refused_when_its_colour_was_redeployed_since(drill):
    platform = _platform(drill)
    plan = platform.plan_rollback()
    _set_image(drill, "checkout-blue", "1.4.1")

    with pytest.raises(Conflict, match=r"deployment/checkout-blue changed since you looked \(revision 2 → 3\)"):
        list(platform.execute(plan))
    assert _selector(drill)["version"] == "green"


def test_the_numbers_are_the_ones_kubectl_rollout_history_shows(drill, tmp_path):
    kubectl = require_binary("kubectl", "kubernetes-client")
    _set_image(drill, "checkout-blue", "1.4.1")

    def kubectl_revisions(deployment: str) -> list[int]:
        out = subprocess.run(
            [kubectl, "--kubeconfig", str(drill.kubeconfig_path), "--cache-dir", str(tmp_path / "cache"),
             "--request-timeout=10s", "-n", "shop", "rollout", "history", f"deployment/{deployment}"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        assert out.startswith(f"deployment.apps/{deployment}"), out
        return [int(line.split()[0]) for line in out.splitlines() if line[:1].isdigit()]

    shown = {r.colour: r.number for r in _platform(drill).history()}
    # The console's number for each colour is the newest revision kubectl lists for its Deployment.
    assert shown == {"blue": max(kubectl_revisions("checkout-blue")), "green": max(kubectl_revisions("checkout-green"))}
    assert shown == {"blue": 3, "green": 2}


def test_switch_verifies_the_endpoints_are_the_target_colours_pods(drill):
    platform = _platform(drill)
    steps = list(platform.execute(platform.plan_rollback()))

    assert [s.message for s in steps][0] == "service/checkout patched: traffic switched from green to blue"
    assert steps[-1].done and not steps[-1].failed
    assert steps[-1].message.startswith("service/checkout now routes to blue: 3 ready endpoints, all blue pods (")
    assert _selector(drill) == {"app": "checkout", "version": "blue"}
    endpoints = drill.world.store.get("endpoints", "shop", "checkout")
    blue_ips = {
        p["status"]["podIP"]
        for p in drill.world.store.list("pods", "shop")[0]
        if p["metadata"]["labels"].get("version") == "blue"
    }
    assert {a["ip"] for a in endpoints["subsets"][0]["addresses"]} == blue_ips
    assert ("PATCH", SERVICE_PATH, 200) in drill.server.requests

    assert platform.active_colour() == "blue"
    health = platform.verify()
    assert (health.desired, health.ready, health.updated) == (3, 3, 3)
    # And back again: the other colour.
    back = list(platform.execute(platform.plan_rollback()))
    assert back[-1].done and not back[-1].failed and _selector(drill)["version"] == "green"


def test_refuses_to_switch_to_a_colour_without_ready_pods(drill):
    platform = _platform(drill)
    _scale_world(drill, "checkout-blue", 0)

    with pytest.raises(Conflict) as caught:
        platform.plan_rollback()

    assert str(caught.value) == (
        "Refusing to switch checkout to blue: it has no ready pods (0 pods, 0 ready), so the switch would "
        "leave the service without endpoints. Scale up or fix deployment/checkout-blue "
        "(`kubectl get pods -l version=blue`) and try again."
    )
    assert _selector(drill)["version"] == "green"


def test_refuses_at_execute_when_the_target_lost_its_pods_since_the_plan(drill):
    platform = _platform(drill)
    plan = platform.plan_rollback()
    patches_before = [r for r in drill.server.requests if r[0] == "PATCH" and r[1] == SERVICE_PATH]
    # Scaling a deployment does not touch the Service: the plan's version still holds.
    _scale_world(drill, "checkout-blue", 0)

    with pytest.raises(Conflict, match="Refusing to switch checkout to blue: it has no ready pods"):
        list(platform.execute(plan))

    assert _selector(drill)["version"] == "green"
    assert [r for r in drill.server.requests if r[0] == "PATCH" and r[1] == SERVICE_PATH] == patches_before


def test_switches_back_at_once_when_the_endpoints_do_not_follow(drill, monkeypatch):
    # The endpoints controller stalls (a real cluster's lag or outage): the
    # Endpoints keep listing green's pods after the selector moved to blue.
    monkeypatch.setattr(drill.world, "_sync_endpoints", lambda: None)
    platform = _platform(drill, verify_seconds=1.0)

    steps = list(platform.execute(platform.plan_rollback()))

    last = steps[-1]
    assert last.done and last.failed
    assert last.message.startswith(
        "Switch to blue failed: the endpoints of service/checkout were not blue's ready pods within 1 s "
        "(ready endpoints: 10."
    )
    assert last.message.endswith("switched traffic back to green at once. Check blue's pods before trying again.")
    assert _selector(drill)["version"] == "green"
    patches = [r for r in drill.server.requests if r[0] == "PATCH" and r[1] == SERVICE_PATH]
    assert [r[2] for r in patches] == [200, 200]  # the switch, and the switch back


def test_stale_plan_is_refused(drill):
    from kubernetes import client, config

    platform = _platform(drill)
    plan = platform.plan_rollback()
    core = client.CoreV1Api(config.new_client_from_config(str(drill.kubeconfig_path)))
    core.patch_namespaced_service("checkout", "shop", {"metadata": {"labels": {"touched": "yes"}}})

    with pytest.raises(Conflict, match=r"service/checkout changed since you looked \(resourceVersion"):
        list(platform.execute(plan))
    assert _selector(drill)["version"] == "green"


def test_forbidden_patch_names_verb_resource_and_namespace(drill):
    drill.server.kube.forbid("patch", "services")
    platform = _platform(drill)

    with pytest.raises(Forbidden) as caught:
        list(platform.execute(platform.plan_rollback()))

    assert str(caught.value) == (
        'Kubernetes refused to patch services "checkout" in namespace "shop" (Forbidden): your credentials '
        "lack that permission; ask a cluster admin or use a context that has it."
    )
    assert _selector(drill)["version"] == "green"


def test_missing_service_and_unknown_live_colour_are_sentences(drill):
    with pytest.raises(NotFound, match='Service "nope" not found in namespace "shop"'):
        _platform(drill, service_object="nope").plan_rollback()
    purple = _platform(drill, colours={"purple": "checkout-blue", "orange": "checkout-green"})
    with pytest.raises(PlatformError, match="selects version=green, which is none of the configured colours"):
        purple.plan_rollback()
    assert "none of the configured colours (purple, orange)" in (purple.health().error or "")
