"""The drill world's controllers and traffic model, driven by simulated time."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from console.clock import ScaledClock
from console.drill.objects import NotFound
from console.drill.scenario import load_scenario, parse_scenario
from console.drill.world import World

REVISION = "deployment.kubernetes.io/revision"


def make_world(scenario) -> tuple[World, ScaledClock]:
    clock = ScaledClock(scenario.start, speed=0)
    return World(scenario, clock=clock), clock


def run(world: World, clock: ScaledClock, seconds: float, step: float = 1.0) -> None:
    """Move simulated time forward in steps, as API requests would."""
    elapsed = 0.0
    while elapsed < seconds:
        clock.advance(step)
        elapsed += step
        world.advance()


def replicasets(world: World) -> dict[int, dict]:
    items, _ = world.store.list("replicasets", "shop")
    return {int(rs["metadata"]["annotations"][REVISION]): rs for rs in items}


def undo(world: World, to_revision: int) -> None:
    """What `kubectl rollout undo --to-revision` writes: the old template and its change cause."""
    target = replicasets(world)[to_revision]
    deployment = world.store.get("deployments", "shop", "order-service")
    template = copy.deepcopy(target["spec"]["template"])
    del template["metadata"]["labels"]["pod-template-hash"]
    deployment["spec"]["template"] = template
    deployment["metadata"]["annotations"]["kubernetes.io/change-cause"] = target["metadata"]["annotations"]["kubernetes.io/change-cause"]
    world.store.update("deployments", "shop", deployment)
    world.advance()


def images(world: World) -> list[str]:
    pods, _ = world.store.list("pods", "shop")
    return sorted(pod["spec"]["containers"][0]["image"].rsplit(":", 1)[1] for pod in pods)


def condition(deployment: dict, kind: str) -> dict:
    return next(c for c in deployment["status"]["conditions"] if c["type"] == kind)


@pytest.fixture
def bad_deploy():
    return make_world(load_scenario("bad-deploy"))


def test_history_gives_one_replicaset_per_revision_and_ready_pods(bad_deploy):
    world, _ = bad_deploy
    by_revision = replicasets(world)
    assert sorted(by_revision) == [1, 2, 3]
    assert [by_revision[r]["spec"]["template"]["spec"]["containers"][0]["image"] for r in (1, 2, 3)] == [
        "registry.example.com/order-service:1.2.1",
        "registry.example.com/order-service:1.2.2",
        "registry.example.com/order-service:1.2.3",
    ]
    current = by_revision[3]
    assert current["spec"]["replicas"] == 3 and by_revision[2]["spec"]["replicas"] == 0
    assert current["metadata"]["annotations"]["kubernetes.io/change-cause"] == "deploy 1.2.3"
    assert current["metadata"]["name"] == "order-service-" + current["metadata"]["labels"]["pod-template-hash"]
    deployment = world.store.get("deployments", "shop", "order-service")
    owner = current["metadata"]["ownerReferences"][0]
    assert owner["controller"] is True and owner["uid"] == deployment["metadata"]["uid"]
    assert deployment["metadata"]["annotations"][REVISION] == "3"
    status = deployment["status"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"], status["availableReplicas"]) == (3, 3, 3, 3)
    assert status["observedGeneration"] == deployment["metadata"]["generation"]
    assert condition(deployment, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert images(world) == ["1.2.3"] * 3
    endpoints = world.store.get("endpoints", "shop", "order-service")
    addresses = endpoints["subsets"][0]["addresses"]
    assert len(addresses) == 3 and all(a["ip"].startswith("10.0.") and a["targetRef"]["kind"] == "Pod" for a in addresses)


def test_undo_moves_the_revision_annotation_and_rolls_out(bad_deploy):
    world, clock = bad_deploy
    undo(world, 2)
    by_revision = replicasets(world)
    assert sorted(by_revision) == [1, 3, 4], "revision 2 disappears from history, as in Kubernetes"
    assert by_revision[4]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.2.2")
    assert by_revision[4]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
    deployment = world.store.get("deployments", "shop", "order-service")
    assert deployment["metadata"]["annotations"][REVISION] == "4"
    assert condition(deployment, "Progressing")["reason"] == "ReplicaSetUpdated"
    # Rolling update: one surge pod first, the old pods stay until new ones are ready.
    assert by_revision[4]["spec"]["replicas"] == 1 and by_revision[3]["spec"]["replicas"] == 3
    run(world, clock, 60)
    deployment = world.store.get("deployments", "shop", "order-service")
    status = deployment["status"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (3, 3, 3)
    assert condition(deployment, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert images(world) == ["1.2.2"] * 3
    assert world.health("order-service")[0] == 200
    assert world.samples("order-service")[-1].error_rate == pytest.approx(0.001)


def test_new_pods_become_ready_after_ready_seconds(bad_deploy):
    world, clock = bad_deploy
    undo(world, 2)
    new_rs = replicasets(world)[4]
    pods, _ = world.store.list("pods", "shop", label_selector=f"pod-template-hash={new_rs['metadata']['labels']['pod-template-hash']}")
    assert len(pods) == 1
    name = pods[0]["metadata"]["name"]

    def ready() -> str:
        pod = world.store.get("pods", "shop", name)
        return next(c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready")

    assert world.store.get("pods", "shop", name)["status"]["phase"] == "Pending"
    run(world, clock, 5)
    assert world.store.get("pods", "shop", name)["status"]["phase"] == "Running"
    assert ready() == "False"
    run(world, clock, 6)
    assert ready() == "True"


def crash_scenario(**service_overrides):
    service = {
        "name": "api",
        "namespace": "shop",
        "image": "registry.example.com/api",
        "replicas": 2,
        "progress_deadline_seconds": 60,
        "history": [{"version": "1.0.0", "age": "1h"}],
        "versions": {"2.0.0": {"ready": False, "log_error": "panic: nil map"}},
    }
    service.update(service_overrides)
    return parse_scenario(
        {
            "name": "crash",
            "start": "2024-01-17T14:00:00Z",
            "services": [service],
            "timeline": [{"at": 0, "deploy": {"service": "api", "version": "2.0.0"}}],
            "expect": {"action": "rollback_now"},
        }
    )


def test_a_version_that_never_becomes_ready_exceeds_the_progress_deadline():
    world, clock = make_world(crash_scenario())
    world.advance()
    run(world, clock, 30, step=5)
    deployment = world.store.get("deployments", "shop", "api")
    assert condition(deployment, "Progressing")["reason"] == "ReplicaSetUpdated" or condition(deployment, "Progressing")["reason"] == "NewReplicaSetCreated"
    run(world, clock, 60, step=5)
    deployment = world.store.get("deployments", "shop", "api")
    progressing = condition(deployment, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"].endswith("has timed out progressing.")
    pods, _ = world.store.list("pods", "shop")
    crashing = [p for p in pods if p["spec"]["containers"][0]["image"].endswith(":2.0.0")]
    assert len(crashing) == 1, "maxUnavailable rounds down to 0: the old pods stay"
    container = crashing[0]["status"]["containerStatuses"][0]
    assert container["restartCount"] >= 2 and container["ready"] is False
    assert "panic: nil map" in world.pod_log("shop", crashing[0]["metadata"]["name"], "app", None)
    assert world.health("api")[0] == 200, "the old version still serves"


@pytest.mark.parametrize("strategy", ["RollingUpdate", "Recreate"])
def test_a_rollout_onto_a_reused_crash_looping_replicaset_exceeds_the_progress_deadline(strategy):
    # 2.0.0 crash-looped an hour before 1.0.0 replaced it; rolling back onto its ReplicaSet
    # (reused, not new) must time out like a new one would.
    scenario = crash_scenario(strategy=strategy, history=[{"version": "2.0.0", "age": "2h"}, {"version": "1.0.0", "age": "1h"}])
    scenario = scenario.model_copy(update={"timeline": []})
    world, clock = make_world(scenario)
    world.advance()
    deployment = world.store.get("deployments", "shop", "api")
    assert condition(deployment, "Progressing")["reason"] == "NewReplicaSetAvailable"
    items, _ = world.store.list("replicasets", "shop")
    crashing = next(rs for rs in items if rs["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2.0.0"))
    template = copy.deepcopy(crashing["spec"]["template"])
    del template["metadata"]["labels"]["pod-template-hash"]
    deployment["spec"]["template"] = template
    world.store.update("deployments", "shop", deployment)
    world.advance()
    run(world, clock, 30, step=5)
    progressing = condition(world.store.get("deployments", "shop", "api"), "Progressing")
    assert progressing["status"] == "True" and progressing["reason"] in ("FoundNewReplicaSet", "ReplicaSetUpdated")
    run(world, clock, 40, step=5)
    deployment = world.store.get("deployments", "shop", "api")
    progressing = condition(deployment, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"] == f'ReplicaSet "{crashing["metadata"]["name"]}" has timed out progressing.'
    # The reused ReplicaSet kept its name and took the next revision.
    assert deployment["metadata"]["annotations"][REVISION] == "3"


def test_recreate_with_a_crashing_version_takes_the_service_down():
    world, clock = make_world(crash_scenario(strategy="Recreate"))
    world.advance()
    run(world, clock, 30, step=5)
    assert world.health("api")[0] == 503
    assert world.samples("api")[-1].error_rate == 1.0 and world.samples("api")[-1].latency_p95_s is None
    pods, _ = world.store.list("pods", "shop")
    waiting = [p["status"]["containerStatuses"][0].get("state", {}).get("waiting", {}).get("reason") for p in pods]
    assert "CrashLoopBackOff" in waiting


def test_scale_to_zero_and_back(bad_deploy):
    world, clock = bad_deploy
    deployment = world.store.get("deployments", "shop", "order-service")
    deployment["spec"]["replicas"] = 0
    world.store.update("deployments", "shop", deployment)
    world.advance()
    assert world.store.list("pods", "shop")[0] == []
    assert world.health("order-service")[0] == 503
    deployment = world.store.get("deployments", "shop", "order-service")
    deployment["spec"]["replicas"] = 3
    world.store.update("deployments", "shop", deployment)
    run(world, clock, 15)
    deployment = world.store.get("deployments", "shop", "order-service")
    assert deployment["status"]["availableReplicas"] == 3
    assert sorted(replicasets(world)) == [1, 2, 3], "scaling makes no new revision"


def test_deleted_pods_are_replaced(bad_deploy):
    world, _ = bad_deploy
    pods, _ = world.store.list("pods", "shop")
    world.store.delete("pods", "shop", pods[0]["metadata"]["name"])
    world.advance()
    after, _ = world.store.list("pods", "shop")
    assert len(after) == 3 and pods[0]["metadata"]["name"] not in {p["metadata"]["name"] for p in after}


def test_the_same_seed_gives_the_same_world():
    first, _ = make_world(load_scenario("bad-deploy"))
    second, _ = make_world(load_scenario("bad-deploy"))

    def shape(world: World) -> list[tuple[str, str]]:
        pods, _ = world.store.list("pods")
        return [(p["metadata"]["name"], p["status"]["podIP"]) for p in pods]

    assert shape(first) == shape(second)
    name = shape(first)[0][0]
    assert first.pod_log("shop", name, "app", 20) == second.pod_log("shop", name, "app", 20)


def test_pod_logs_show_the_bad_version_and_respect_tail(bad_deploy):
    world, clock = bad_deploy
    run(world, clock, 600, step=60)
    name = world.store.list("pods", "shop")[0][0]["metadata"]["name"]
    log = world.pod_log("shop", name, "app", 50)
    lines = log.splitlines()
    assert len(lines) == 50
    assert any("ERROR" in line and "upstream timeout" in line for line in world.pod_log("shop", name, "app", 300).splitlines())
    with pytest.raises(ValueError, match="not valid for pod"):
        world.pod_log("shop", name, "sidecar", 5)
    with pytest.raises(NotFound):
        world.pod_log("shop", "no-such-pod", "app", 5)


def test_metrics_history_is_prefilled_and_follows_the_deploy(bad_deploy):
    world, _ = bad_deploy
    samples = world.samples("order-service")
    assert samples[0].at == world.start - timedelta(minutes=30)
    assert samples[-1].at == world.start
    assert len(samples) == 121
    assert samples[0].error_rate == pytest.approx(0.001) and samples[0].latency_p95_s == pytest.approx(0.25)
    assert samples[-1].error_rate == pytest.approx(0.08) and samples[-1].latency_p95_s == pytest.approx(2.0)
    counters = world.counters()["order-service"]
    assert counters.count == pytest.approx(40 * 1800, rel=0.01)


def test_blue_green_switching_back_to_blue_restores_service():
    world, clock = make_world(load_scenario("blue-green"))
    assert world.store.get("services", "shop", "checkout")["spec"]["selector"] == {"app": "checkout", "version": "green"}
    assert world.health("checkout")[0] == 503
    service = world.store.get("services", "shop", "checkout")
    service["spec"]["selector"]["version"] = "blue"
    world.store.update("services", "shop", service)
    run(world, clock, 15, step=15)
    assert world.health("checkout") == (200, {"status": "healthy", "versions": ["1.4.0"]})
    assert world.samples("checkout")[-1].error_rate == pytest.approx(0.001)
    endpoints = world.store.get("endpoints", "shop", "checkout")
    assert {a["targetRef"]["name"].rsplit("-", 2)[0] for a in endpoints["subsets"][0]["addresses"]} == {"checkout-blue"}


def test_canary_weight_zero_sends_all_traffic_to_stable():
    world, clock = make_world(load_scenario("canary"))
    assert world.samples("search")[-1].error_rate == pytest.approx(0.8 * 0.001 + 0.2 * 0.3)
    vs = world.store.get("virtualservices", "shop", "search")
    vs["spec"]["http"][0]["route"][0]["weight"] = 100
    vs["spec"]["http"][0]["route"][1]["weight"] = 0
    world.store.update("virtualservices", "shop", vs)
    run(world, clock, 15, step=15)
    assert world.samples("search")[-1].error_rate == pytest.approx(0.001)
    # A weight on a subset without ready pods fails like Istio's "no healthy upstream".
    canary = world.store.get("deployments", "shop", "search-canary")
    canary["spec"]["replicas"] = 0
    world.store.update("deployments", "shop", canary)
    vs = world.store.get("virtualservices", "shop", "search")
    vs["spec"]["http"][0]["route"][1]["weight"] = 50
    vs["spec"]["http"][0]["route"][0]["weight"] = 50
    world.store.update("virtualservices", "shop", vs)
    run(world, clock, 15, step=15)
    assert world.samples("search")[-1].error_rate == pytest.approx(0.5 * 0.001 + 0.5)


def test_timeline_external_outage_sets_the_fact_and_raises_errors():
    world, clock = make_world(load_scenario("external-outage"))
    assert world.facts["external_service_issue"] is False
    run(world, clock, 45, step=15)
    assert world.facts["external_service_issue"] is True
    assert world.samples("order-service")[-1].error_rate == pytest.approx(1 - 0.999 * 0.91)
    assert any("payment provider" in note for _, note in world.notes)
    assert world.state()["external_outages"] == {"order-service": "payments-provider.example.net"}


def _log_by_offset(world: World, service_start) -> list[tuple[float, str]]:
    from datetime import datetime

    pods, _ = world.store.list("pods", "shop")
    text = world.pod_log("shop", pods[0]["metadata"]["name"], "app", None)
    out = []
    for line in text.splitlines():
        stamp = datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00"))
        out.append(((stamp - service_start).total_seconds(), line))
    return out


def test_logs_stay_true_to_the_time_they_were_written():
    # external-outage: payments-provider.example.net fails from 30 s to 15 min (error rate 0.09).
    world, clock = make_world(load_scenario("external-outage"))
    dependency = "payments-provider.example.net unavailable"
    run(world, clock, 300, step=60)
    during = _log_by_offset(world, world.start)
    assert not any(dependency in line for at, line in during if at < 30), "lines before the outage name it"
    assert any(dependency in line for at, line in during if 30 <= at)

    run(world, clock, 720, step=60)  # recovered at 15 min; now 17 min
    assert world.facts["external_service_issue"] is False
    after = _log_by_offset(world, world.start)
    window = [line for at, line in after if 30 <= at < 900]
    errors = [line for line in window if " ERROR " in line]
    assert len(window) > 400
    # The outage window's lines still say what happened then, at the rate Prometheus saw.
    assert all(dependency in line for line in errors)
    assert 0.05 < len(errors) / len(window) < 0.14
    assert world.sample_at("order-service", world.start + timedelta(minutes=5)).error_rate == pytest.approx(1 - 0.999 * 0.91)
    assert not any(dependency in line for at, line in after if at >= 900 or at < 30)


def test_intermittent_errors_oscillate_deterministically():
    first, _ = make_world(load_scenario("intermittent"))
    second, _ = make_world(load_scenario("intermittent"))
    rates = [s.error_rate for s in first.samples("user-service")]
    assert rates == [s.error_rate for s in second.samples("user-service")]
    assert {round(r, 3) for r in rates[-60:]} == {0.04, 0.002}
