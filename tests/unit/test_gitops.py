"""GitOps owners: the pure core (what a pause leaves to do, when it escalates),
the ownership marks, and the drill's controllers run on a stopped clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from console import incident as incidents
from console.checklist import DEFAULT_CHECKLIST, evaluate_checklist
from console.clock import ScaledClock
from console.drill.scenario import load_scenario, parse_scenario
from console.drill.world import World
from console.gitops import ARGOCD, FLUX, GROUP, Owner, overdue_pause, pause_deadline, pause_items, with_pauses
from console.model import Event
from console.platforms.gitops import marks

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=timezone.utc)
ARGO = Owner(ARGOCD, "order-service", "argocd", automated=True, self_heal=True, revision="b005185bf7ea1e33c04f")


@pytest.mark.parametrize("owner, healing, policy", [
    (ARGO, True, "automated, self-heal"),
    (Owner(ARGOCD, "a", "argocd", automated=True), False, "automated, no self-heal"),
    (Owner(ARGOCD, "a", "argocd"), False, "manual sync (automated off)"),
    (Owner(FLUX, "a", "flux-system"), True, "reconciling (drift corrected)"),
    (Owner(FLUX, "a", "flux-system", suspended=True), False, "suspended"),
])
def test_what_self_heals(owner, healing, policy):
    assert (owner.self_healing, owner.policy) == (healing, policy)


def test_the_header_names_owner_policy_and_revision():
    assert ARGO.header() == ("owned by Argo CD Application argocd/order-service "
                             "(automated, self-heal, synced at b005185bf7ea)")


@pytest.mark.parametrize("metadata, expected", [
    ({"annotations": {"argocd.argoproj.io/tracking-id": "shop-app:apps/Deployment:shop/order-service"}},
     (ARGOCD, "Application", "argocd", "shop-app")),
    ({"annotations": {"argocd.argoproj.io/tracking-id": "team_shop-app:apps/Deployment:shop/x"}},
     (ARGOCD, "Application", "team", "shop-app")),
    ({"labels": {"app.kubernetes.io/instance": "shop-app"}}, (ARGOCD, "Application", "argocd", "shop-app")),
    ({"labels": {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}},
     (FLUX, "Kustomization", "flux-system", "apps")),
    ({"labels": {"helm.toolkit.fluxcd.io/name": "shop", "helm.toolkit.fluxcd.io/namespace": "shop"}},
     (FLUX, "HelmRelease", "shop", "shop")),
    ({"labels": {"app": "order-service"}}, None),
])
def test_ownership_marks(metadata, expected):
    assert marks({"metadata": metadata}) == expected


def paused_state(at: datetime = NOW) -> incidents.IncidentState:
    state = incidents.new_state("INC-1", "order-service", NOW - timedelta(minutes=10))
    event = incidents.gitops_paused(ARGO.ref, ARGOCD, ARGO.revision, ARGO.resume_hint())
    return incidents.apply(state, Event(at, event.kind, event.text, "console", incidents.pairs(event.data)))


def test_a_pause_is_recorded_and_adds_two_items_due_with_the_gitops_group():
    state = paused_state()
    assert [p.ref for p in state.paused_owners] == [ARGO.ref]
    checklist = with_pauses(DEFAULT_CHECKLIST, state.paused_owners, timedelta(hours=4))
    again, fix = pause_items(state.paused_owners[0])
    assert checklist.items[-2:] == (again, fix)
    assert again.text.startswith("Re-enable automated sync of Argo CD Application argocd/order-service")
    assert "b005185bf7ea" in fix.text
    assert checklist.group(GROUP).deadline == timedelta(hours=4)
    completed = incidents.apply(state, Event(NOW, incidents.ROLLBACK_COMPLETED, "done"))
    status = evaluate_checklist(completed, NOW + timedelta(hours=5), checklist=checklist)
    assert status.item(again.id).overdue and status.item(again.id).due_at == NOW + timedelta(hours=4)
    assert with_pauses(DEFAULT_CHECKLIST, ()) is DEFAULT_CHECKLIST


def test_an_owner_paused_too_long_escalates_until_turned_back_on():
    pauses = paused_state().paused_owners
    assert overdue_pause(pauses, set(), NOW + timedelta(hours=23)) == ""
    why = overdue_pause(pauses, set(), NOW + timedelta(hours=25))
    assert "Argo CD Application argocd/order-service has stayed paused for more than 24 hours" in why
    assert overdue_pause(pauses, {pause_items(pauses[0])[0].id}, NOW + timedelta(hours=25)) == ""
    assert pause_deadline(pauses, set()) == NOW + timedelta(hours=24)
    assert pause_deadline(pauses, {pause_items(pauses[0])[0].id}) is None


# --- the drill's controllers --------------------------------------------------------

def world_of(scenario) -> tuple[World, ScaledClock]:
    clock = ScaledClock(scenario.start, speed=0)
    return World(scenario, clock=clock), clock


def image(world: World) -> str:
    return world.store.get("deployments", "shop", "order-service")["spec"]["template"]["spec"]["containers"][0]["image"]


def set_image(world: World, version: str) -> None:
    deployment = world.store.get("deployments", "shop", "order-service")
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = f"registry.example.com/order-service:{version}"
    world.store.update("deployments", "shop", deployment)


def run(world: World, clock: ScaledClock, seconds: float) -> None:
    for _ in range(int(seconds)):
        clock.advance(1)
        world.advance()


def test_drift_is_healed_after_the_self_heal_timeout_and_recorded_in_the_history():
    world, clock = world_of(load_scenario("gitops-argocd"))
    set_image(world, "1.2.2")
    run(world, clock, 4)
    assert image(world).endswith(":1.2.2")
    run(world, clock, 2)
    assert image(world).endswith(":1.2.3")
    app = world.store.get("applications", "argocd", "order-service")
    assert len(app["status"]["history"]) == 4 and app["status"]["sync"]["status"] == "Synced"


def test_a_pinned_target_revision_is_synced_like_argocd_app_rollback():
    world, clock = world_of(load_scenario("gitops-argocd"))
    app = world.store.get("applications", "argocd", "order-service")
    previous = app["status"]["history"][-2]["revision"]
    app["spec"]["source"]["targetRevision"] = previous
    world.store.update("applications", "argocd", app)
    run(world, clock, 6)
    assert image(world).endswith(":1.2.2")


def test_an_app_of_apps_parent_re_enables_its_child():
    data = load_scenario("gitops-argocd").model_dump(mode="json", exclude_unset=True)
    data["services"][0]["gitops"]["parent"] = "shop-apps"
    world, clock = world_of(parse_scenario(data))
    app = world.store.get("applications", "argocd", "order-service")
    assert app["metadata"]["labels"]["app.kubernetes.io/instance"] == "shop-apps"
    app["spec"]["syncPolicy"]["automated"]["enabled"] = False
    world.store.update("applications", "argocd", app)
    set_image(world, "1.2.2")
    run(world, clock, 30)
    assert image(world).endswith(":1.2.3")  # the parent put automated sync back, and it healed
    assert world.store.get("applications", "argocd", "order-service")["spec"]["syncPolicy"]["automated"].get(
        "enabled") is None
