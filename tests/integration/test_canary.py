"""CanaryPlatform against the drill world's canary scenario over HTTP: search
3.1.0 stable (4 replicas), search-canary 3.2.0 (1 replica) taking 20 % through
VirtualService search."""

from __future__ import annotations

import json

import pytest

from conftest_adapters import start_drill

from console.platforms.base import Conflict, Forbidden, Observed, Platform, PlatformError
from console.platforms.canary import CanaryPlatform
from console.provenance import ROLLBACKS_ANNOTATION

VS_PATH = "/apis/networking.istio.io/v1beta1/namespaces/shop/virtualservices/search"
SCALE_PATH = "/apis/apps/v1/namespaces/shop/deployments/search-canary/scale"


@pytest.fixture
def drill():
    running = start_drill(scenario="canary")
    try:
        yield running
    finally:
        running.stop()


def _platform(drill, **kwargs) -> CanaryPlatform:
    return CanaryPlatform("search", "shop", kubeconfig=str(drill.kubeconfig_path), clock=drill.world.clock, **kwargs)


def _world_weights(drill) -> list[tuple[str, int]]:
    vs = drill.world.store.get("virtualservices", "shop", "search")
    return [(r["destination"]["subset"], r["weight"]) for r in vs["spec"]["http"][0]["route"]]


def _canary_replicas(drill) -> int:
    drill.world.advance()
    return drill.world.store.get("deployments", "shop", "search-canary")["spec"]["replicas"]


def test_weights_history_and_health(drill):
    platform = _platform(drill)
    assert isinstance(platform, Platform)

    routing = platform.routing()
    assert routing.kind == "canary"
    assert routing.weights == (("stable", 80), ("canary", 20))
    assert routing.weight("canary") == 20 and routing.active is None
    assert routing.replicas == (("search", 4), ("search-canary", 1))
    assert routing.source == "virtualservice/search"

    history = platform.history()
    assert [(r.number, r.versions, r.current) for r in history] == [
        (3, ("3.2.0",), True),
        (2, ("3.1.0",), True),
        (1, ("3.0.4",), False),
    ]
    assert history[0].ref == "canary (deployment/search-canary, 20 % of traffic)"
    assert history[0].change_cause == "canary 3.2.0"
    health = platform.health()
    assert (health.desired, health.ready) == (5, 5)
    assert {p.images[0].rsplit(":", 1)[1] for p in platform.pods()} == {"3.1.0", "3.2.0"}


def test_plan_shows_the_exact_requests(drill):
    platform = _platform(drill)
    version = drill.world.store.get("virtualservices", "shop", "search")["metadata"]["resourceVersion"]

    plan = platform.plan_rollback()

    assert (plan.platform, plan.from_versions, plan.to_versions) == ("canary", ("3.2.0",), ("3.1.0",))
    assert (plan.from_revision, plan.to_revision) == (3, 2)
    weights, scale = plan.calls
    assert (weights.method, weights.target) == ("PATCH", VS_PATH)
    assert json.loads(weights.body) == {
        "metadata": {"resourceVersion": version},
        "spec": {"http": [{"route": [
            {"destination": {"host": "search", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "search", "subset": "canary"}, "weight": 0},
        ]}]},
    }
    assert (scale.method, scale.target) == ("PATCH", SCALE_PATH)
    assert json.loads(scale.body) == [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 0},
    ]
    assert _world_weights(drill) == [("stable", 80), ("canary", 20)]  # planning changes nothing
    with pytest.raises(PlatformError, match="A canary is rolled back by aborting it to the stable revision"):
        platform.plan_rollback(to_revision=1)


def test_abort_sets_weights_scales_down_and_verifies(drill):
    platform = _platform(drill)

    steps = list(platform.execute(platform.plan_rollback()))

    messages = [s.message for s in steps]
    assert messages[0] == "virtualservice.networking.istio.io/search patched: stable 100 / canary 0"
    assert messages[1] == "deployment.apps/search-canary scaled to 0"
    assert messages[-1] == (
        "Canary aborted: virtualservice/search routes stable 100 / canary 0, deployment/search-canary has 0 pods"
    )
    assert steps[-1].done and not steps[-1].failed
    assert _world_weights(drill) == [("stable", 100), ("canary", 0)]
    assert _canary_replicas(drill) == 0
    assert not drill.world.store.list("pods", "shop", "track=canary")[0]
    # The server took a merge patch for the VirtualService (custom resources refuse strategic merge).
    assert ("PATCH", VS_PATH, 200) in drill.server.requests and ("PATCH", SCALE_PATH, 200) in drill.server.requests
    assert platform.routing().weights == (("stable", 100), ("canary", 0))
    assert (platform.verify().desired, platform.verify().ready) == (4, 4)

    again = platform.plan_rollback()
    assert again.skip_reason == "skipped abort (the canary of search already has weight 0 and 0 replicas)"


def test_weights_already_zero_plans_only_the_scale_down(drill):
    platform = _platform(drill)
    list(platform.execute(platform.plan_rollback()))
    # Someone scales the canary up again by hand; the weights stay at 0.
    from kubernetes import client, config

    apps = client.AppsV1Api(config.new_client_from_config(str(drill.kubeconfig_path)))
    apps.patch_namespaced_deployment_scale("search-canary", "shop", {"spec": {"replicas": 2}})

    plan = platform.plan_rollback()

    assert [c.target for c in plan.calls] == [SCALE_PATH]
    steps = list(platform.execute(plan))
    assert steps[-1].done and not steps[-1].failed and _canary_replicas(drill) == 0


def _route_half_to_the_canary(drill) -> None:
    """Someone else sets the VirtualService to 50/50, with the official client."""
    from kubernetes import client, config

    custom = client.CustomObjectsApi(config.new_client_from_config(str(drill.kubeconfig_path)))
    custom.patch_namespaced_custom_object(
        "networking.istio.io", "v1beta1", "shop", "virtualservices", "search",
        {"spec": {"http": [{"route": [
            {"destination": {"host": "search", "subset": "stable"}, "weight": 50},
            {"destination": {"host": "search", "subset": "canary"}, "weight": 50},
        ]}]}},
    )


def test_weights_set_again_on_a_scaled_down_canary_plan_only_the_patch(drill):
    """After an abort, someone routes traffic to the canary again while it has no
    pods: the plan patches the weights and says there is nothing to scale (it
    said "scale deployment/search-canary from 0 to 0 replicas")."""
    platform = _platform(drill)
    list(platform.execute(platform.plan_rollback()))
    _route_half_to_the_canary(drill)
    plan = platform.plan_rollback()
    assert [c.target for c in plan.calls] == [VS_PATH]
    assert "from 0 to 0" not in plan.summary and "already has 0 replicas: nothing to scale" in plan.summary


def test_changed_weights_refuse_the_plan_and_nothing_is_scaled(drill):
    platform = _platform(drill)
    plan = platform.plan_rollback()
    _route_half_to_the_canary(drill)

    with pytest.raises(Conflict, match=r"virtualservice/search changed since you looked \(resourceVersion"):
        list(platform.execute(plan))

    assert _world_weights(drill) == [("stable", 50), ("canary", 50)]
    assert _canary_replicas(drill) == 1


def test_routes_beyond_the_runbooks_shape_are_kept(drill):
    vs = drill.world.store.get("virtualservices", "shop", "search")
    vs["spec"]["http"] = [
        {"match": [{"headers": {"x-canary": {"exact": "1"}}}],
         "route": [{"destination": {"host": "search.shop.svc.cluster.local", "subset": "canary"}, "weight": 100},
                   {"destination": {"host": "search.shop.svc.cluster.local", "subset": "stable"}, "weight": 0}]},
        {"route": [{"destination": {"host": "search", "subset": "stable"}, "weight": 70},
                   {"destination": {"host": "search", "subset": "canary"}, "weight": 30}],
         "retries": {"attempts": 3}},
    ]
    drill.world.store.update("virtualservices", "shop", vs, check_version=False)
    platform = _platform(drill)
    assert platform.routing().weights == (("stable", 0), ("canary", 100))  # the first route that has them

    steps = list(platform.execute(platform.plan_rollback()))

    assert steps[-1].done and not steps[-1].failed
    http = drill.world.store.get("virtualservices", "shop", "search")["spec"]["http"]
    assert http[0]["match"] == [{"headers": {"x-canary": {"exact": "1"}}}]
    assert [r["weight"] for r in http[0]["route"]] == [0, 100]
    assert [r["weight"] for r in http[1]["route"]] == [100, 0]
    assert http[1]["retries"] == {"attempts": 3}


def test_forbidden_virtualservice_patch_is_a_sentence_and_nothing_changes(drill):
    drill.server.kube.forbid("patch", "virtualservices")
    platform = _platform(drill)

    with pytest.raises(Forbidden) as caught:
        list(platform.execute(platform.plan_rollback()))

    assert str(caught.value) == (
        'Kubernetes refused to patch virtualservices "search" in namespace "shop" (Forbidden): your '
        "credentials lack that permission; ask a cluster admin or use a context that has it."
    )
    assert _world_weights(drill) == [("stable", 80), ("canary", 20)]
    assert _canary_replicas(drill) == 1


def test_forbidden_scale_names_the_scale_verb(drill):
    drill.server.kube.forbid("patch", "deployments/scale")
    platform = _platform(drill)

    with pytest.raises(Forbidden, match=r'^Kubernetes refused to scale deployments "search-canary" in namespace "shop"'):
        list(platform.execute(platform.plan_rollback()))
    # The weights moved first: the canary takes no traffic even though it still runs.
    assert _world_weights(drill) == [("stable", 100), ("canary", 0)]


def test_scale_to_zero_freezes_stable_and_canary(drill):
    platform = _platform(drill)
    assert platform.scale(0) == 4
    drill.world.advance()
    assert drill.world.store.get("deployments", "shop", "search")["spec"]["replicas"] == 0
    assert _canary_replicas(drill) == 0
    assert platform.scale(4) == 0
    drill.world.advance()
    assert drill.world.store.get("deployments", "shop", "search")["spec"]["replicas"] == 4
    assert _canary_replicas(drill) == 0  # the canary stays aborted


def test_history_keeps_the_records_it_read_at_no_extra_request(drill):
    vs = drill.world.store.get("virtualservices", "shop", "search")
    vs["metadata"].setdefault("annotations", {})[ROLLBACKS_ANNOTATION] = json.dumps(
        [{"by": "ana@desk", "from": ["3.2.0"], "to": ["3.1.0"], "at": "2026-12-04T10:00:00Z", "why": "p99"}])
    drill.world.store.update("virtualservices", "shop", vs, check_version=False)
    stable = drill.world.store.get("deployments", "shop", "search")
    stable["metadata"].setdefault("annotations", {})[ROLLBACKS_ANNOTATION] = json.dumps(
        [{"by": "raj@desk", "from": ["3.1.0"], "to": ["3.0.4"], "at": "2026-12-04T09:00:00Z"}])
    drill.world.store.update("deployments", "shop", stable, check_version=False)
    platform = _platform(drill)
    assert isinstance(platform, Observed) and platform.recorded() is None  # nothing read yet

    drill.server.clear_requests()
    platform.history()
    asked = list(drill.server.requests)
    found = platform.recorded()

    assert list(drill.server.requests) == asked  # recorded() asks nothing
    assert [r for r in asked if r[1] == VS_PATH] == [("GET", VS_PATH, 200)]  # the VirtualService read once
    assert len([r for r in asked if r[1].endswith("/deployments/search")]) == 1  # the stable deployment too
    assert [(r.by, r.to_versions) for r in found.records] == [("raj@desk", ("3.0.4",)), ("ana@desk", ("3.1.0",))]
    assert found.records == platform.provenance().records  # what planning reads fresh


def test_another_consoles_abort_shows_in_the_timeline_within_one_refresh(drill, tmp_path):
    from console.config import load
    from console.session import Session
    from console.store import Store

    stores = [Store(tmp_path / "kim.db"), Store(tmp_path / "bob.db")]
    kim = Session(load(drill.config_path), stores[0], operator="kim@laptop")
    bob = Session(load(drill.config_path), stores[1], operator="bob@laptop")
    try:
        kim.refresh_blocking()
        assert not [e for e in kim.events("search") if e.actor == "bob@laptop"]
        steps = list(bob.execute(bob.plan_rollback("search"), reason="canary errors", timeout=60))
        assert steps[-1].done and not steps[-1].failed

        kim.refresh_blocking()  # one refresh

        [noted] = [e for e in kim.events("search") if e.actor == "bob@laptop"]
        assert "bob@laptop rolled search back from 3.2.0 to 3.1.0 at " in noted.text
        assert "(reason: canary errors)" in noted.text
        kim.refresh_blocking()
        assert len([e for e in kim.events("search") if e.actor == "bob@laptop"]) == 1  # once
    finally:
        for session in (kim, bob):
            session.close()
        for store in stores:
            store.close()
