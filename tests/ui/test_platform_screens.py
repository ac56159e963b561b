"""Issue 4's screens against live drill worlds, through the real Session:
a revision's template and diff, pods and logs, blue-green and canary routing
in the panes, the rollback lease held by another console, freezing writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import wait_for

from console.config import load
from console.drill import runner
from console.drill.scenario import load_scenario
from console.session import Session
from console.store import Store
from console.ui.app import RollbackConsoleApp, build_app
from console.ui.messages import RollbackFinished
from console.ui.panes.history import HistoryTable
from console.ui.panes.routing import LeaseStrip, RoutingPane
from console.ui.panes.services import ServiceTable
from console.ui.platform_actions import PlatformActions
from console.ui.screens.confirm import ConfirmRollbackScreen
from console.ui.screens.corruption import WritesScreen
from console.ui.screens.pods import PodsScreen
from console.ui.screens.revision import RevisionScreen, template_diff

pytestmark = pytest.mark.integration

SPEED = 20.0
TIMEOUT = 60.0
SIZE = (140, 45)


@pytest.fixture
def drill(tmp_path: Path):
    """Start a drill by scenario name and a Session on it; everything is stopped at the end."""
    started: list[tuple[runner.RunningDrill, Store]] = []

    def start(name: str, operator: str = "trainee@drill") -> tuple[runner.RunningDrill, Session]:
        running = runner.start(load_scenario(name), speed=SPEED, directory=tmp_path / f"drill-{len(started)}")
        store = Store(tmp_path / f"incidents-{len(started)}.db")
        started.append((running, store))
        config = load(running.config_path).model_copy(update={"refresh_interval": 0.5})
        return running, Session(config, store, clock=running.world.clock, operator=operator)

    yield start
    for running, store in started:
        store.close()
        running.stop()


def text_of(app: RollbackConsoleApp, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


def notifications(app: RollbackConsoleApp) -> str:
    return "\n".join(n.message for n in app._notifications)


def deployment(running: runner.RunningDrill, namespace: str, name: str) -> dict:
    with running.world.store.lock:
        return running.world.store.get("deployments", namespace, name)


def test_the_diff_is_a_unified_diff_of_the_yaml_templates() -> None:
    current = {"spec": {"containers": [{"name": "app", "image": "r/x:1.2.3"}]}}
    chosen = {"spec": {"containers": [{"name": "app", "image": "r/x:1.2.2"}]}}
    lines = template_diff(current, chosen, "revision 3 (current)", "revision 2")
    assert lines[0] == "--- revision 3 (current)" and lines[1] == "+++ revision 2"
    assert "-    image: r/x:1.2.3" in lines and "+    image: r/x:1.2.2" in lines
    assert template_diff(current, current, "a", "b") == []


def test_the_new_keys_have_ids_and_descriptions() -> None:
    for cls in (RevisionScreen, PodsScreen, WritesScreen):
        for binding in cls.BINDINGS:
            assert binding.id and binding.description, f"{cls.__name__}: {binding.key}"
    keys = {b.id: b.key for b in RollbackConsoleApp.BINDINGS}
    assert (keys["revision"], keys["pods"], keys["writes"], keys["corruption"]) == ("v", "p", "w", "C")
    for action in ("revision", "pods", "writes", "corruption"):
        assert hasattr(PlatformActions, f"action_{action}")


async def test_a_revision_shows_its_template_and_diff_and_rolls_back_to_it(drill) -> None:
    running, session = drill("bad-deploy")
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        history = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: history.row_count == 3, "the rollout history")
        history.focus()
        history.move_cursor(row=history.get_row_index("1"))
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, RevisionScreen), "the revision screen")
        screen = app.screen
        await wait_for(pilot, lambda: bool(screen.diff_lines), "the diff")
        assert "--- revision 3 (current)" in screen.diff_lines and "+++ revision 1" in screen.diff_lines
        assert any(line.startswith("-") and line.endswith("order-service:1.2.3") for line in screen.diff_lines)
        assert any(line.startswith("+") and line.endswith("order-service:1.2.1") for line in screen.diff_lines)
        template = text_of(app, "#template-text")
        assert "image: registry.example.com/order-service:1.2.1" in template and "pod-template-hash" not in template

        await pilot.press("r")  # roll back to the revision shown: the plan comes first
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan")
        assert (app.screen.plan.from_revision, app.screen.plan.to_revision) == (3, 1)
        await pilot.press("n")
        await pilot.pause()
        assert deployment(running, "shop", "order-service")["spec"]["template"]["spec"]["containers"][0][
            "image"].endswith(":1.2.3")

        # The current revision has nothing to roll back to: no button, r does nothing.
        history.move_cursor(row=history.get_row_index("3"))
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, RevisionScreen), "the current revision")
        await wait_for(pilot, lambda: "No difference" in text_of(app, "#diff-text"), "no difference")
        assert not app.screen.query("#rollback")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, RevisionScreen)


async def test_pods_and_their_last_log_lines_after_a_rollback(drill) -> None:
    running, session = drill("bad-deploy")
    messages: list[object] = []
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan")
        await pilot.press("y")
        await wait_for(pilot, lambda: any(isinstance(m, RollbackFinished) for m in messages), "the rollback",
                       timeout=TIMEOUT * 2)

        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PodsScreen), "the pods screen")
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.pods) == 3 and all(p.ready for p in screen.pods), "3 ready pods")
        assert all(p.images[0].endswith(":1.2.2") for p in screen.pods)
        assert all(p.restarts == 0 and p.age is not None for p in screen.pods)
        await wait_for(pilot, lambda: "Health" in text_of(app, "#pods-status"), "the health endpoint line")
        assert "step 5" in text_of(app, "#pods-status")

        first = screen.pods[0].name
        await pilot.press("enter")  # the highlighted (first) pod's log
        await wait_for(pilot, lambda: screen.logs_of == first, "the pod's log")
        assert 0 < len(screen.log_lines) <= 50
        assert app.screen.query_one("#pod-log").border_title == f"Logs of {first} (last 50 lines)"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PodsScreen)


async def test_blue_green_shows_the_live_colour_and_switches_back(drill) -> None:
    running, session = drill("blue-green")
    messages: list[object] = []
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        pane = app.query_one(RoutingPane)
        await wait_for(pilot, lambda: pane.display and "Live" in str(pane.render()), "the routing pane")
        assert "Live green" in str(pane.render()) and pane.border_title == "Blue-green"
        assert pane.border_subtitle == "blue 0 / green 100"
        # The triage table's Rev column says whose number it is: the live colour's.
        table = app.query_one(ServiceTable)
        await wait_for(pilot, lambda: str(table.get_cell("checkout", "revision")) == "green · 2", "green · 2 in Rev")
        # Each colour with its Deployment's own revision number (both carry 2), as kubectl rollout history shows.
        history = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: history.row_count == 2, "the colours in the history")
        assert sorted(str(history.get_cell(key, "revision")) for key in ("blue:2", "green:2")) == ["blue · 2", "green · 2"]
        assert history.border_subtitle == "current: green · revision 2 (1.5.0)"

        # The blue row's revision screen reads blue's template, though green carries the same number.
        history.focus()
        history.move_cursor(row=history.get_row_index("blue:2"))
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, RevisionScreen), "blue's revision screen")
        screen = app.screen
        await wait_for(pilot, lambda: bool(screen.diff_lines), "the diff")
        assert "--- green · revision 2 (current)" in screen.diff_lines and "+++ blue · revision 2" in screen.diff_lines
        assert any(line.startswith("+") and line.endswith("checkout:1.4.0") for line in screen.diff_lines)
        await pilot.press("escape")
        await pilot.pause()
        # Enter on the blue row plans the switch to blue (not an ambiguous "revision 2").
        history.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan from the blue row")
        assert '"version": "blue"' in app.screen.plan.calls[0].body
        assert text_of(app, "#plan-revisions") == "Revision green · 2  →  blue · 2"
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmRollbackScreen), "the plan to close")
        # Enter on the live green row: the row passes green:2, so the plan is "already there", not ambiguous.
        history.focus()
        history.move_cursor(row=history.get_row_index("green:2"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan from the green row")
        assert app.screen.plan.skip_reason == "skipped switch (service/checkout already sends traffic to green)"
        assert "ambiguous" not in notifications(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmRollbackScreen), "the skipped plan to close")

        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the switch plan")
        plan = app.screen.plan
        assert (plan.from_revision, plan.to_revision) == (2, 2)
        assert plan.summary.startswith("green · revision 2 → blue · revision 2: ")
        # The exact request: a patch of the Service's selector.
        assert [c.method for c in plan.calls] == ["PATCH"] and plan.calls[0].target.endswith("/services/checkout")
        assert '"version": "blue"' in plan.calls[0].body
        assert "PATCH /api/v1/namespaces/shop/services/checkout" in "\n".join(
            str(s.render()) for s in app.screen.query("#plan-calls Static"))
        await pilot.press("y")
        await wait_for(pilot, lambda: any(isinstance(m, RollbackFinished) for m in messages), "the switch",
                       timeout=TIMEOUT * 2)
        finished = next(m for m in messages if isinstance(m, RollbackFinished))
        assert finished.ok, finished.error
        await wait_for(pilot, lambda: "Live blue" in str(pane.render()), "blue to be live in the pane")
        assert pane.border_subtitle == "blue 100 / green 0"


async def test_canary_shows_the_weights_and_the_abort_requests(drill) -> None:
    running, session = drill("canary")
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(RoutingPane)
        await wait_for(pilot, lambda: pane.display and "Weights" in str(pane.render()), "the weights")
        routing = app.routing
        assert pane.border_title == "Canary" and routing.weight("canary") > 0
        assert pane.border_subtitle == f"stable {routing.weight('stable')} / canary {routing.weight('canary')}"
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the abort plan")
        calls = app.screen.plan.calls
        assert calls[0].method == "PATCH" and "/virtualservices/" in calls[0].target and '"weight": 100' in calls[0].body
        assert calls[1].target.endswith("/deployments/search-canary/scale")
        await pilot.press("n")


async def test_a_rollback_held_by_another_console_is_shown_and_refused(drill) -> None:
    running, session = drill("bad-deploy")
    # Another console in the war room takes the lease first.
    other = session.platform("order-service").rollback_lease("alice@laptop", ttl=600)
    other.__enter__()
    try:
        messages: list[object] = []
        app = build_app(session, animate=False)
        async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
            strip = app.query_one(LeaseStrip)
            await wait_for(pilot, lambda: strip.display, "the lease strip")
            assert "is being rolled back by alice@laptop since" in str(strip.render())

            # The gate refuses before any plan is shown: one rollback at a time, across consoles.
            await pilot.press("r")
            refusal = "Not rolling back order-service: alice@laptop is rolling order-service back right now"
            await wait_for(pilot, lambda: refusal in notifications(app), "the refusal")
            assert not isinstance(app.screen, ConfirmRollbackScreen)
            assert not any(isinstance(m, RollbackFinished) for m in messages)
            await wait_for(pilot, lambda: any("rollback refused" in e.text and "alice@laptop" in e.text
                                              for e in app.events), "the timeline entry")
            assert deployment(running, "shop", "order-service")["spec"]["template"]["spec"]["containers"][0][
                "image"].endswith(":1.2.3")
    finally:
        other.__exit__(None, None, None)


async def test_freezing_writes_names_the_replica_count_and_remembers_it(drill) -> None:
    running, session = drill("bad-deploy")
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, WritesScreen), "the freeze confirmation")
        title = str(app.screen.query_one(".dialog-title").render())
        assert "scale 3 → 0 replicas" in title
        assert app.screen.preview.calls[0].target.endswith("/deployments/order-service/scale")
        await pilot.press("y")
        await wait_for(pilot, lambda: "Writes frozen" in "\n".join(n.title for n in app._notifications),
                       "writes frozen", timeout=TIMEOUT * 2)
        assert deployment(running, "shop", "order-service")["spec"]["replicas"] == 0
        assert session.corruption_response("order-service").state().frozen_replicas == 3
        assert session.facts("order-service").data_corruption  # freezing is step 1 of the corruption response

        # Resuming is step 6: it waits for the damage to be assessed and verified (or skipped with reasons).
        await pilot.press("w")
        await wait_for(pilot, lambda: "cannot run yet" in notifications(app), "the refusal to resume early")
        assert "Press C" in notifications(app)
        assert deployment(running, "shop", "order-service")["spec"]["replicas"] == 0


async def test_a_gitops_owner_is_named_under_the_banner_and_paused_in_the_plan(drill) -> None:
    from console.ui.panes.incident import ChecklistPane
    from console.ui.panes.owner import OwnerStrip

    running, session = drill("gitops-argocd")
    messages: list[object] = []
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        strip = app.query_one(OwnerStrip)
        await wait_for(pilot, lambda: strip.display and "Argo CD" in str(strip.render()), "the owner strip")
        assert "owned by Argo CD Application argocd/order-service (automated, self-heal, synced at" in str(strip.render())
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan")
        calls = "\n".join(str(s.render()) for s in app.screen.query("#plan-calls Static"))
        assert calls.index("applications/order-service") < calls.index("deployments/order-service")
        await pilot.press("y")
        await wait_for(pilot, lambda: any(isinstance(m, RollbackFinished) for m in messages), "the rollback",
                       timeout=TIMEOUT * 2)
        finished = next(m for m in messages if isinstance(m, RollbackFinished))
        assert finished.ok, finished.error
        checklist = app.query_one(ChecklistPane)
        await wait_for(pilot, lambda: checklist.display and checklist.status is not None and any(
            s.item.text.startswith("Re-enable automated sync") for s in checklist.status.items), "the GitOps items")
        with running.world.store.lock:
            app_spec = running.world.store.get("applications", "argocd", "order-service")["spec"]
        assert app_spec["syncPolicy"]["automated"]["enabled"] is False
        assert any("paused so that the rollback sticks" in e.text for e in app.events)


async def test_an_ecs_deployment_failing_behind_the_old_tasks_is_said_in_the_health_pane(drill, tmp_path) -> None:
    """Its old tasks serve and the signals say HEALTHY; the health pane says the new deployment is failing."""
    import boto3
    import yaml

    from console.drill.ecs import DRILL_CREDENTIAL_ENV
    from console.drill.scenario import SCENARIO_DIR

    data = yaml.safe_load((SCENARIO_DIR / "ecs-bad-deploy.yaml").read_text())
    data["services"][0]["ecs"]["circuit_breaker"] = {"enable": False, "rollback": False}
    variant = tmp_path / "ecs-no-breaker.yaml"
    variant.write_text(yaml.safe_dump(data))
    running, session = drill(str(variant))
    key, secret = DRILL_CREDENTIAL_ENV.values()
    ecs = boto3.client("ecs", region_name="us-east-1", endpoint_url=f"{running.server.url}/ecs",
                       aws_access_key_id=key, aws_secret_access_key=secret)
    cluster = data["services"][0]["ecs"]["cluster"]
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "updated" in text_of(app, "#pods-caption"), "the health pane")
        assert "failing" not in text_of(app, "#pods-caption")
        ecs.register_task_definition(family="order-service",
                                     containerDefinitions=[{"name": "app", "image": "registry.example.com/order-service:9.9.9"}])
        ecs.update_service(cluster=cluster, service="order-service", taskDefinition="order-service:4")
        await wait_for(pilot, lambda: "the deployment of order-service:4 is failing" in text_of(app, "#pods-caption"),
                       "the failing deployment in the health pane", timeout=TIMEOUT)
