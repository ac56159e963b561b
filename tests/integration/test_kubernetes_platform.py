"""KubernetesPlatform against the drill world's Kubernetes API over HTTP
(bad-deploy: order-service revisions 1 = 1.2.1, 2 = 1.2.2, 3 = 1.2.3 current)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest_adapters import DRILL_SPEED, HangingServer, require

from console.platforms.base import (  # noqa: E402
    Conflict,
    Forbidden,
    NotFound,
    Platform,
    PlatformError,
    Timeout,
    Unavailable,
    kubernetes_error,
)
from console.platforms.kubernetes import KubernetesPlatform  # noqa: E402

IMAGE = "registry.example.com/order-service:{}"
PATCH_PATH = "/apis/apps/v1/namespaces/shop/deployments/order-service"


def _platform(drill, deployment: str = "order-service", **kwargs) -> KubernetesPlatform:
    return KubernetesPlatform(
        "order-service",
        "shop",
        deployment,
        kubeconfig=str(drill.kubeconfig_path),
        clock=drill.world.clock,
        **kwargs,
    )


def _world_deployment(drill) -> dict:
    return drill.world.store.get("deployments", "shop", "order-service")


def _world_revisions(drill) -> dict[str, str]:
    """image -> revision annotation of every ReplicaSet in the world."""
    items, _ = drill.world.store.list("replicasets", "shop")
    return {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
        for rs in items
    }


def _raw_apps(drill):
    """The official client, used directly to move the world behind the platform's back."""
    try:
        from kubernetes import client, config
    except ImportError as exc:
        require(False, f"the kubernetes client is not installed: {exc}")
        raise
    return client.AppsV1Api(config.new_client_from_config(str(drill.kubeconfig_path)))


def _kubeconfig_for(tmp_path: Path, server: str) -> str:
    from console.drill.server import write_kubeconfig

    return str(write_kubeconfig(tmp_path / "kubeconfig", server, "shop"))


# --- history, health, pods, logs ---------------------------------------------


def test_history_lists_revisions_newest_first(drill):
    history = _platform(drill).history()

    assert [r.number for r in history] == [3, 2, 1]
    assert [r.versions for r in history] == [("1.2.3",), ("1.2.2",), ("1.2.1",)]
    assert [r.current for r in history] == [True, False, False]
    assert [r.change_cause for r in history] == ["deploy 1.2.3", "deploy 1.2.2", "deploy 1.2.1"]
    assert history[0].created is not None and history[0].created.tzinfo is not None
    assert history[0].created > history[1].created > history[2].created
    assert all(r.ref.startswith("order-service-") for r in history)


def test_construction_is_lazy_and_cheap(drill):
    started = time.perf_counter()
    platform = _platform(drill)
    assert time.perf_counter() - started < 0.05
    assert isinstance(platform, Platform)
    assert platform.server == ""  # nothing loaded, nothing asked
    assert drill.server.requests == []


def test_health_counts_pods_from_the_deployment_status(drill):
    health = _platform(drill).health()

    assert (health.desired, health.ready, health.updated, health.available) == (3, 3, 3, 3)
    assert abs((drill.world.clock.now() - health.checked_at).total_seconds()) < 60
    assert not health.completely_down


def test_pods_and_logs_follow_the_runbooks_step_4(drill):
    platform = _platform(drill)
    pods = platform.pods()

    assert len(pods) == 3
    assert all(p.ready and p.ready_containers == "1/1" and p.status == "Running" for p in pods)
    assert all(p.images == (IMAGE.format("1.2.3"),) for p in pods)
    assert all(p.age is not None and p.age.total_seconds() >= 0 for p in pods)

    logs = platform.logs(tail=5)
    assert [entry.pod for entry in logs] == [p.name for p in pods]
    assert all(entry.error is None and 0 < len(entry.lines) <= 5 for entry in logs)


# --- plan ------------------------------------------------------------------


def test_plan_rollback_goes_to_the_previous_revision_with_a_version_test(drill):
    before = _world_deployment(drill)["metadata"]["resourceVersion"]
    plan = _platform(drill).plan_rollback()

    assert (plan.from_revision, plan.to_revision) == (3, 2)
    assert plan.from_versions == ("1.2.3",) and plan.to_versions == ("1.2.2",)
    assert plan.skip_reason is None
    assert plan.resource_version == before
    (call,) = plan.calls
    assert (call.method, call.target) == ("PATCH", PATCH_PATH)
    ops = json.loads(call.body)
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": before}
    assert [(op["op"], op["path"]) for op in ops[1:]] == [
        ("replace", "/spec/template"),
        ("replace", "/metadata/annotations"),
    ]
    template = ops[1]["value"]
    assert template["spec"]["containers"][0]["image"] == IMAGE.format("1.2.2")
    assert "pod-template-hash" not in template["metadata"]["labels"]
    # kubectl's annotationsToSkip: the revision stays the deployment's own,
    # the change cause comes from the restored ReplicaSet.
    annotations = ops[2]["value"]
    assert annotations["deployment.kubernetes.io/revision"] == "3"
    assert annotations["kubernetes.io/change-cause"] == "deploy 1.2.2"
    # Planning changes nothing.
    assert _world_deployment(drill)["metadata"]["resourceVersion"] == before
    assert not [r for r in drill.server.requests if r[0] != "GET"]


def test_a_plan_right_after_a_refresh_reuses_its_read_and_is_the_same_plan(drill):
    platform = _platform(drill)
    platform.observe()  # the refresh cycle's read of the deployment and its ReplicaSets
    asked = len(drill.server.requests)
    reused = platform.plan_rollback()
    assert len(drill.server.requests) == asked  # the refresh's read, kept (pickled), not a new one
    fresh = platform.plan_rollback()  # the kept read is used once: this one reads again
    assert len(drill.server.requests) > asked
    assert reused == fresh
    assert (reused.from_revision, reused.to_revision, reused.to_versions) == (3, 2, ("1.2.2",))


def test_a_refresh_only_process_keeps_no_read_for_a_plan(drill, monkeypatch):
    """The refresh process never plans: its refresh reads are not kept (2 MB at
    500 services); a plan there would read the objects again."""
    from console.platforms import kubernetes

    monkeypatch.setattr(kubernetes, "_plans_here", True)
    kubernetes.refresh_only()
    assert kubernetes._plans_here is False
    platform = _platform(drill)
    platform.observe()
    assert platform._observed is None
    asked = len(drill.server.requests)
    assert platform.plan_rollback().to_versions == ("1.2.2",)
    assert len(drill.server.requests) == asked + 2


def test_plan_to_an_unknown_revision_names_the_known_ones(drill):
    with pytest.raises(NotFound) as caught:
        _platform(drill).plan_rollback(to_revision=7)
    assert str(caught.value) == (
        "revision 7 not found in the history of deployment/order-service; revisions: 1, 2, 3"
    )


def test_unknown_deployment_is_not_found(drill):
    with pytest.raises(NotFound) as caught:
        _platform(drill, deployment="no-such-service").history()
    message = str(caught.value)
    assert '"no-such-service"' in message and '"shop"' in message
    assert "check" in message


def test_paused_deployment_refuses_the_rollback(drill):
    _raw_apps(drill).patch_namespaced_deployment("order-service", "shop", {"spec": {"paused": True}})

    with pytest.raises(Conflict) as caught:
        _platform(drill).plan_rollback()
    assert "paused" in str(caught.value)
    assert "kubectl rollout resume deployment/order-service" in str(caught.value)


# --- execute ---------------------------------------------------------------


def test_execute_rolls_back_and_reports_like_rollout_status(drill):
    platform = _platform(drill)
    plan = platform.plan_rollback()

    # Simulated time moves by hand through the PATCH and the first status
    # reads, so the half-way state is seen however slow this machine is today.
    drill.world.clock.set_speed(0)
    execution = platform.execute(plan, timeout=600)
    progress = [next(execution), next(execution)]
    assert progress[1].message == "Waiting for deployment spec update to be observed..."
    drill.world.clock.advance(1)  # the controller's turn; the first new pod takes 10 s
    drill.world.advance()
    progress.append(next(execution))
    drill.world.clock.set_speed(DRILL_SPEED)
    progress += list(execution)

    messages = [p.message for p in progress]
    assert messages[0] == "deployment.apps/order-service rolled back"
    assert messages[2].startswith('Waiting for deployment "order-service" rollout to finish: '), messages[2]
    assert messages[-1] == 'deployment "order-service" successfully rolled out'
    assert progress[-1].done and not progress[-1].failed
    assert not any(p.done for p in progress[:-1])
    assert any(m.startswith('Waiting for deployment "order-service" rollout to finish: ') for m in messages)
    assert len(messages) == len(set(messages))  # repeated statuses are not repeated
    assert [p.at for p in progress] == sorted(p.at for p in progress)
    # The world moved: the template is 1.2.2 again and its ReplicaSet is revision 4.
    deployment = _world_deployment(drill)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE.format("1.2.2")
    assert _world_revisions(drill)[IMAGE.format("1.2.2")] == "4"
    # The server took the body as a JSON Patch (a list is refused as any other type).
    assert ("PATCH", PATCH_PATH, 200) in drill.server.requests

    history = platform.history()
    assert [(r.number, r.versions, r.current) for r in history] == [
        (4, ("1.2.2",), True),
        (3, ("1.2.3",), False),
        (1, ("1.2.1",), False),
    ]
    health = platform.verify()
    assert (health.desired, health.ready, health.updated) == (3, 3, 3)
    assert all(p.images == (IMAGE.format("1.2.2"),) for p in platform.pods())

    # Undo to the template already running is kubectl's "skipped rollback".
    again = platform.plan_rollback(to_revision=4)
    assert again.skip_reason == "skipped rollback (current template already matches revision 4)"
    assert again.calls == ()
    version = _world_deployment(drill)["metadata"]["resourceVersion"]
    patches = len([r for r in drill.server.requests if r[0] == "PATCH"])
    (only,) = list(platform.execute(again))
    assert only.done and only.message == again.skip_reason
    assert _world_deployment(drill)["metadata"]["resourceVersion"] == version
    assert len([r for r in drill.server.requests if r[0] == "PATCH"]) == patches


def test_the_gate_takes_the_records_of_the_plans_own_read_only_while_the_patch_tests_it(drill, monkeypatch):
    """The records the plan was made from stand for a fresh read (two requests
    fewer between the key and the change) because the PATCH tests the
    resourceVersion read: another console's record written after it is never
    acted past. An older plan, or one whose change is not that PATCH, is read fresh."""
    from dataclasses import replace

    from console.platforms import kubernetes
    from console.provenance import RollbackRecord, encode

    platform = _platform(drill)
    plan = platform.plan_rollback()
    asked = len(drill.server.requests)
    assert platform.plan_provenance(plan) == platform.provenance()
    assert len(drill.server.requests) == asked + 2  # only the fresh read asked the API
    # Not that plan's read, or no test of its version: read fresh.
    assert platform.plan_provenance(replace(plan, resource_version="1")) is None
    untested = json.loads(plan.calls[0].body)[1:]
    assert platform.plan_provenance(replace(plan, calls=(replace(plan.calls[0], body=json.dumps(untested)),))) is None
    assert platform.plan_provenance(replace(plan, pre_calls=plan.calls)) is None
    monkeypatch.setattr(kubernetes, "REUSE_SECONDS", 0.0)
    assert platform.plan_provenance(plan) is None
    monkeypatch.undo()

    # Another console's rollback record lands after the plan's read: the records the gate
    # took do not show it, and the change is refused, so nothing acts past it.
    plan = platform.plan_rollback()
    taken = platform.plan_provenance(plan)
    other = RollbackRecord("other@host", ("1.2.3",), ("1.2.2",), drill.world.clock.now(), "their reason", "")
    _raw_apps(drill).patch_namespaced_deployment(
        "order-service", "shop",
        {"metadata": {"annotations": {kubernetes.ROLLBACKS_ANNOTATION: encode((), other)}}})
    assert taken is not None and not taken.records
    assert platform.provenance().records  # a fresh read has it
    with pytest.raises(Conflict):
        list(platform.execute(plan))
    assert _world_deployment(drill)["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE.format("1.2.3")


def test_stale_plan_is_refused_and_the_world_is_unchanged(drill):
    platform = _platform(drill)
    plan = platform.plan_rollback()
    moved = _raw_apps(drill).patch_namespaced_deployment(
        "order-service", "shop", {"metadata": {"annotations": {"note": "someone else was here"}}}
    )
    new_version = moved.metadata.resource_version

    with pytest.raises(Conflict) as caught:
        list(platform.execute(plan))

    assert str(caught.value) == (
        f"deployment/order-service changed since you looked (resourceVersion "
        f"{plan.resource_version} → {new_version}); review the new state and try again"
    )
    deployment = _world_deployment(drill)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE.format("1.2.3")
    assert deployment["metadata"]["resourceVersion"] == new_version


def test_rollout_that_exceeds_its_progress_deadline_is_reported_failed(drill):
    apps = _raw_apps(drill)
    platform = _platform(drill)

    def set_image(version: str) -> None:
        apps.patch_namespaced_deployment(
            "order-service",
            "shop",
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE.format(version)}]}}}},
        )

    # Revision 4 is an image that cannot be pulled; revision 5 is 1.2.3 again.
    set_image("9.9.9-missing")
    set_image("1.2.3")
    progress = []
    for step in platform.execute(platform.plan_rollback(to_revision=4), timeout=3600):
        progress.append(step)
        if step.message.startswith("Waiting for deployment \"order-service\" rollout"):
            drill.world.clock.advance(700)  # past progressDeadlineSeconds (600)
        if step.done:
            break

    assert progress[-1].message == 'deployment "order-service" exceeded its progress deadline'
    assert progress[-1].failed and progress[-1].done


def test_a_rollout_past_its_progress_deadline_is_said_with_the_health(drill):
    """The controller's ProgressDeadlineExceeded, read with the deployment the refresh
    reads anyway: the old pods may go on serving, so the signals alone would not say it."""
    platform = _platform(drill)
    assert platform.health().deployment_failing is None
    _raw_apps(drill).patch_namespaced_deployment("order-service", "shop", {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": IMAGE.format("9.9.9-missing")}]}}}})
    drill.world.clock.advance(60)
    drill.world.advance()
    assert platform.health().deployment_failing is None  # still within its 600 s
    drill.world.clock.advance(700)
    drill.world.advance()
    health = platform.health()
    assert health.deployment_failing == (
        f"the rollout of revision 4 exceeded its progress deadline: {health.updated} of 3 new pods")
    assert health.updated >= 1


def test_rollout_that_does_not_finish_in_time_raises_timeout(tmp_path):
    from conftest_adapters import start_drill

    slow = start_drill(speed=1.0)  # 10 simulated seconds per pod, in real time
    try:
        platform = _platform(slow)
        plan = platform.plan_rollback()
        started = time.monotonic()
        with pytest.raises(Timeout) as caught:
            list(platform.execute(plan, timeout=1))
        assert time.monotonic() - started < 5
        assert "did not finish rolling out within 1 s" in str(caught.value)
    finally:
        slow.stop()


# --- reaching the API --------------------------------------------------------


def test_unreachable_api_is_unavailable(tmp_path, closed_port):
    server = f"http://127.0.0.1:{closed_port}"
    platform = KubernetesPlatform(
        "order-service", "shop", "order-service", kubeconfig=_kubeconfig_for(tmp_path, server)
    )
    with pytest.raises(Unavailable) as caught:
        platform.history()
    assert str(caught.value) == (
        f"Cannot reach the Kubernetes API at {server}: connection refused. "
        "Check the kubeconfig context and VPN."
    )


def test_api_that_never_answers_times_out(tmp_path, hanging_server: HangingServer):
    platform = KubernetesPlatform(
        "order-service",
        "shop",
        "order-service",
        kubeconfig=_kubeconfig_for(tmp_path, hanging_server.url),
        timeout=0.3,
    )
    started = time.monotonic()
    with pytest.raises(Timeout) as caught:
        platform.health()
    assert time.monotonic() - started < 2
    assert "did not answer within 0.3 s" in str(caught.value)
    assert "drill-trainee" not in str(caught.value)  # the kubeconfig's token


def test_missing_kubeconfig_is_a_sentence(tmp_path):
    platform = KubernetesPlatform(
        "order-service", "shop", "order-service", kubeconfig=str(tmp_path / "nope"), context="prod"
    )
    with pytest.raises(Unavailable) as caught:
        platform.history()
    assert str(caught.value).startswith(f'Cannot load the Kubernetes configuration ({tmp_path / "nope"}, context "prod")')
    assert str(caught.value).endswith("Check the kubeconfig path and context in the console config.")


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (
            403,
            Forbidden,
            'Kubernetes refused to patch deployments "order-service" in namespace "shop" (Forbidden): '
            "your credentials lack that permission; ask a cluster admin or use a context that has it.",
        ),
        (401, Forbidden, "(Unauthorized): log in again or refresh the token in your kubeconfig."),
        (409, Conflict, "(Conflict): it changed while you were looking"),
        (503, Unavailable, "(HTTP 503)"),
        (504, Timeout, "(HTTP 504)"),
        (418, PlatformError, "HTTP 418"),
    ],
)
def test_api_errors_become_sentences(status, kind, expected):
    from kubernetes.client.exceptions import ApiException

    error = kubernetes_error(
        ApiException(status=status, reason="x"),
        verb="patch",
        resource="deployments",
        name="order-service",
        namespace="shop",
        server="https://k8s.example.com",
    )
    assert type(error) is kind
    assert expected in str(error)
