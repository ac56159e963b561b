"""The AWS ECS procedure end to end: the drill's ECS API over real HTTP with
boto3 (and boto3's own `services_stable` waiter), the ECS platform adapter
against it and against a moto server (a second opinion on request shapes),
and the headless `rollback` command against a served ecs-bad-deploy drill."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from support import require, served_drill
import yaml

from console import config as console_config
from console.drill import runner
from console.drill.ecs import DRILL_CREDENTIAL_ENV
from console.drill.scenario import load_scenario, parse_scenario
from console.platforms.base import Forbidden, NotFound, Unavailable
from console.platforms.ecs import EcsPlatform

pytestmark = pytest.mark.integration

SPEED = 100.0
"""Simulated seconds per wall second: a 15-second task start takes 0.15 s."""
POLL = 0.02
"""Wall seconds between the adapter's stability checks in these tests."""
SCENARIO = Path(runner.__file__).with_name("scenarios") / "ecs-bad-deploy.yaml"
DUMMY_KEY, DUMMY_SECRET = DRILL_CREDENTIAL_ENV.values()
PYTHON = [sys.executable, "-m", "console"]


def scenario_variant(**ecs_service_changes):
    """ecs-bad-deploy with some fields of its service replaced."""
    data = yaml.safe_load(SCENARIO.read_text())
    data["services"][0].update(ecs_service_changes)
    return data


def start(data=None, speed: float = SPEED):
    scenario = parse_scenario(data) if data is not None else load_scenario("ecs-bad-deploy")
    return runner.start(scenario, speed=speed, start_at=datetime.now(timezone.utc).replace(microsecond=0))


@pytest.fixture
def drill():
    running = start()
    try:
        yield running
    finally:
        running.stop()


def client(url: str):
    import boto3

    return boto3.client(
        "ecs", region_name="us-east-1", endpoint_url=url, aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_SECRET
    )


def platform(running, **changes) -> EcsPlatform:
    service = console_config.load(running.config_path).service("order-service")
    return EcsPlatform.from_config(service.model_copy(update={"poll_interval": POLL, **changes}), clock=running.world.clock)


def error_rate(running) -> float:
    answer = httpx.get(
        f"{running.server.url}/prometheus/api/v1/query",
        params={"query": 'service:error_rate:ratio{service="order-service"}'},
        timeout=5,
    ).json()
    return float(answer["data"]["result"][0]["value"][1])


def later(running, seconds: float) -> None:
    """Let simulated time pass without waiting for it."""
    running.world.clock.advance(seconds)
    running.world.advance()


# --- the drill's ECS API ----------------------------------------------------


def test_bad_deploy_runs_revision_3_and_its_traffic_shows_it(drill):
    ecs = client(f"{drill.server.url}/ecs")
    [service] = ecs.describe_services(cluster="shop", services=["order-service"])["services"]
    assert service["taskDefinition"].endswith("task-definition/order-service:3")
    assert [(d["status"], d["runningCount"], d["rolloutState"]) for d in service["deployments"]] == [("PRIMARY", 3, "COMPLETED")]
    arns = ecs.list_task_definitions(familyPrefix="order-service", sort="DESC")["taskDefinitionArns"]
    assert [a.rsplit(":", 1)[1] for a in arns] == ["3", "2", "1"]
    tasks = ecs.describe_tasks(cluster="shop", tasks=ecs.list_tasks(cluster="shop", serviceName="order-service")["taskArns"])["tasks"]
    assert sorted(t["containers"][0]["image"] for t in tasks) == ["registry.example.com/order-service:1.2.3"] * 3
    assert error_rate(drill) == pytest.approx(0.08)
    assert httpx.get(f"{drill.server.url}/health/order-service", timeout=5).json()["versions"] == ["1.2.3"]


def test_the_aws_json_protocol_root_path_and_error_shapes(drill):
    headers = {"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.DescribeServices", "Content-Type": "application/x-amz-json-1.1"}
    unsigned = httpx.post(drill.server.url + "/", headers=headers, content=b'{"cluster":"shop","services":["order-service"]}', timeout=5)
    assert unsigned.status_code == 400 and unsigned.json()["__type"] == "MissingAuthenticationTokenException"
    signed = {**headers, "Authorization": "AWS4-HMAC-SHA256 Credential=x/20240117/us-east-1/ecs/aws4_request"}
    missing = httpx.post(drill.server.url + "/", headers=signed, content=b'{"cluster":"nope","services":["x"]}', timeout=5)
    assert missing.status_code == 400
    assert missing.json() == {"__type": "ClusterNotFoundException", "message": "Cluster not found."}
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        client(drill.server.url).update_service(cluster="shop", service="nope", taskDefinition="order-service:2")
    assert caught.value.response["Error"]["Code"] == "ServiceNotFoundException"


def test_boto3s_own_services_stable_waiter_succeeds_once_the_deployment_completes(drill):
    ecs = client(f"{drill.server.url}/ecs")
    updated = ecs.update_service(cluster="shop", service="order-service", taskDefinition="order-service:2")["service"]
    # Not stable yet: a new PRIMARY beside the old deployment, its tasks pending.
    assert [(d["status"], d["pendingCount"]) for d in updated["deployments"]] == [("PRIMARY", 3), ("ACTIVE", 0)]
    ecs.get_waiter("services_stable").wait(cluster="shop", services=["order-service"], WaiterConfig={"Delay": 0.05, "MaxAttempts": 200})
    [service] = ecs.describe_services(cluster="shop", services=["order-service"])["services"]
    assert [(d["taskDefinition"].rsplit("/", 1)[1], d["rolloutState"], d["runningCount"]) for d in service["deployments"]] == [
        ("order-service:2", "COMPLETED", 3)
    ]
    assert any("has reached a steady state" in e["message"] for e in service["events"])


@pytest.mark.parametrize("breaker", [False, True], ids=["no-circuit-breaker", "circuit-breaker"])
def test_tasks_that_cannot_start_never_look_stable_unless_the_circuit_breaker_rolls_back(breaker):
    from botocore.exceptions import WaiterError

    running = start(scenario_variant(ecs={"cluster": "shop", "circuit_breaker": {"enable": breaker, "rollback": breaker}}))
    try:
        ecs = client(f"{running.server.url}/ecs")
        image = "registry.example.com/order-service:9.9.9"  # a tag the registry does not have
        ecs.register_task_definition(family="order-service", containerDefinitions=[{"name": "app", "image": image}])
        ecs.update_service(cluster="shop", service="order-service", taskDefinition="order-service:4")
        waiter = ecs.get_waiter("services_stable")
        if breaker:
            waiter.wait(cluster="shop", services=["order-service"], WaiterConfig={"Delay": 0.05, "MaxAttempts": 200})
            [service] = ecs.describe_services(cluster="shop", services=["order-service"])["services"]
            assert service["taskDefinition"].endswith("order-service:3")
            assert any("rolling back to deployment" in e["message"] for e in service["events"])
        else:
            with pytest.raises(WaiterError):
                waiter.wait(cluster="shop", services=["order-service"], WaiterConfig={"Delay": 0.05, "MaxAttempts": 20})
        stopped = ecs.list_tasks(cluster="shop", serviceName="order-service", desiredStatus="STOPPED")["taskArns"]
        reasons = {t["stoppedReason"].split(":")[0] for t in ecs.describe_tasks(cluster="shop", tasks=stopped)["tasks"]}
        assert "CannotPullContainerError" in reasons
    finally:
        running.stop()


# --- the platform adapter against the drill ---------------------------------


@pytest.fixture
def no_breaker():
    running = start(scenario_variant(ecs={"cluster": "shop", "circuit_breaker": {"enable": False, "rollback": False}}))
    try:
        yield running
    finally:
        running.stop()


def test_a_deployment_whose_tasks_fail_to_start_is_said_while_the_old_tasks_serve(no_breaker):
    """The previous deployment's tasks go on serving (the signals stay healthy): the
    health pane and `status` say the new one is failing, from DescribeServices alone."""
    drill = no_breaker
    assert platform(drill).health().deployment_failing is None
    ecs = client(f"{drill.server.url}/ecs")
    image = "registry.example.com/order-service:9.9.9"  # a tag the registry does not have
    ecs.register_task_definition(family="order-service", containerDefinitions=[{"name": "app", "image": image}])
    ecs.update_service(cluster="shop", service="order-service", taskDefinition="order-service:4")
    later(drill, 120)
    health = platform(drill).health()
    assert health.available == 3 and health.updated == 0
    assert health.deployment_failing is not None
    assert health.deployment_failing.startswith("the deployment of order-service:4 is failing: 0 of 3 tasks running, ")
    failed = int(health.deployment_failing.rsplit(", ", 1)[1].split()[0])
    assert failed > 0 and health.deployment_failing.endswith(f"{failed} failed")
    # The service's events say it as ECS does, with the stopped task's reason (as `aws ecs describe-services`).
    events = ecs.describe_services(cluster="shop", services=["order-service"])["services"][0]["events"]
    stopped = [e["message"] for e in events if "stopped" in e["message"]]
    assert stopped and all(m.startswith("(service order-service) is unable to consistently start tasks successfully: task ")
                           for m in stopped)
    assert "CannotPullContainerError" in stopped[0]
    # Back to the revision that runs: that deployment completes, and nothing is said.
    ecs.update_service(cluster="shop", service="order-service", taskDefinition="order-service:3")
    later(drill, 120)
    assert platform(drill).health().deployment_failing is None


def test_history_lists_the_family_newest_first_with_the_current_revision_marked(drill):
    history = platform(drill).history()
    assert [(r.number, r.versions, r.current) for r in history] == [
        (3, ("1.2.3",), True),
        (2, ("1.2.2",), False),
        (1, ("1.2.1",), False),
    ]
    assert history[0].ref.endswith(":task-definition/order-service:3")
    assert history[0].created is not None and history[0].created > history[1].created


def test_plan_shows_the_exact_update_service_request_and_changes_nothing(drill):
    plan = platform(drill).plan_rollback()
    assert (plan.platform, plan.from_revision, plan.to_revision, plan.to_versions) == ("ecs", 3, 2, ("1.2.2",))
    [call] = plan.calls
    assert call.target.endswith("AmazonEC2ContainerServiceV20141113.UpdateService")
    assert json.loads(call.body) == {"cluster": "shop", "service": "order-service", "taskDefinition": "order-service:2"}
    assert "aws ecs update-service --cluster shop --service order-service --task-definition order-service:2" in plan.summary
    assert DUMMY_SECRET not in str(call) + plan.summary and DUMMY_KEY not in str(call) + plan.summary
    [service] = client(f"{drill.server.url}/ecs").describe_services(cluster="shop", services=["order-service"])["services"]
    assert service["taskDefinition"].endswith("order-service:3")


def test_plan_to_a_chosen_revision_and_skip_when_it_already_runs(drill):
    ecs = platform(drill)
    assert ecs.plan_rollback(to_revision=1).to_versions == ("1.2.1",)
    skipped = ecs.plan_rollback(to_revision=3)
    assert skipped.skip_reason and "already runs order-service:3" in skipped.skip_reason and not skipped.calls
    with pytest.raises(NotFound, match=r"order-service:7 is not an ACTIVE revision \(revisions: 3, 2, 1\)"):
        ecs.plan_rollback(to_revision=7)


def test_execute_rolls_back_waits_for_stability_and_the_traffic_recovers(drill):
    ecs = platform(drill)
    # Simulated time stands still for the update and the first status check,
    # so the half-way state is seen however slow this machine is today.
    drill.world.clock.set_speed(0)
    execution = ecs.execute(ecs.plan_rollback())
    steps = [next(execution), next(execution)]
    drill.world.clock.set_speed(SPEED)
    steps += list(execution)
    assert steps[0].message.startswith("service order-service updated to task definition order-service:2")
    first_check = steps[1].message
    assert first_check.startswith("Waiting"), first_check
    assert "PRIMARY order-service:2" in first_check and "ACTIVE order-service:3 3/3 running" in first_check
    assert "(IN_PROGRESS)" in first_check
    last = steps[-1]
    assert last.done and not last.failed and "steady state: 3/3 tasks of order-service:2 running" in last.message
    assert [s for s in steps if s.done] == [last]
    assert (ecs.verify().ready, ecs.verify().desired) == (3, 3)
    later(drill, 60)
    assert error_rate(drill) == pytest.approx(0.001)
    assert httpx.get(f"{drill.server.url}/health/order-service", timeout=5).json()["versions"] == ["1.2.2"]
    assert ecs.plan_rollback(to_revision=2).skip_reason


def test_a_plan_is_refused_when_a_deployment_started_since(drill):
    ecs = platform(drill)
    plan = ecs.plan_rollback()
    client(f"{drill.server.url}/ecs").update_service(cluster="shop", service="order-service", taskDefinition="order-service:1")
    from console.platforms.base import Conflict

    with pytest.raises(Conflict, match="changed since you looked"):
        list(ecs.execute(plan))


def test_a_stuck_rollout_is_a_failed_step_after_the_stability_deadline():
    running = start(scenario_variant(ecs={"cluster": "shop"}, versions={"1.2.1": {"ready": False}, "1.2.3": {"error_rate": 0.08}}))
    try:
        ecs = platform(running, stability_deadline=120)  # simulated seconds: 1.2 s of wall time
        started = time.monotonic()
        steps = list(ecs.execute(ecs.plan_rollback(to_revision=1)))
        assert time.monotonic() - started < 10
        last = steps[-1]
        assert last.done and last.failed
        assert "did not become stable within 120 s" in last.message and "looks stuck" in last.message
        assert "ACTIVE order-service:3 3/3 running" in last.message  # the old tasks still serve
    finally:
        running.stop()


def test_the_circuit_breaker_stopping_the_rollback_is_reported():
    running = start(scenario_variant(versions={"1.2.1": {"ready": False}, "1.2.3": {"error_rate": 0.08}}))
    try:
        ecs = platform(running)
        last = list(ecs.execute(ecs.plan_rollback(to_revision=1)))[-1]
        assert last.failed
        assert "circuit breaker stopped the rollback to order-service:1" in last.message
        assert "rolled the service back to order-service:3" in last.message
    finally:
        running.stop()


def test_a_plan_says_so_when_the_circuit_breaker_already_rolled_back():
    history = [{"version": "1.2.2", "age": "6d"}, {"version": "1.2.3", "age": "2m"}]
    running = start(scenario_variant(history=history, versions={"1.2.3": {"ready": False}}))
    try:
        ecs = platform(running)
        assert [r.number for r in ecs.history() if r.current] == [1]
        plan = ecs.plan_rollback()
        assert plan.skip_reason and "circuit breaker already rolled order-service back" in plan.skip_reason
        assert not plan.calls
    finally:
        running.stop()


# --- errors become sentences --------------------------------------------------


def test_unknown_service_and_cluster_are_sentences(drill):
    with pytest.raises(NotFound) as service:
        platform(drill, service="nope").history()
    assert 'ECS service "nope" not found on cluster "shop"' in str(service.value)
    with pytest.raises(NotFound) as cluster:
        platform(drill, cluster="nowhere").health()
    assert 'ECS cluster "nowhere" not found in region us-east-1' in str(cluster.value)


def test_access_denied_on_update_service_is_a_sentence_and_changes_nothing(drill):
    drill.world.ecs.inject_fault("UpdateService", "AccessDeniedException")
    ecs = platform(drill)
    with pytest.raises(Forbidden) as denied:
        list(ecs.execute(ecs.plan_rollback()))
    text = str(denied.value)
    assert "AWS denied ecs:UpdateService" in text and "lack that permission" in text
    assert DUMMY_KEY not in text and DUMMY_SECRET not in text
    assert ecs.history()[0].current


def test_expired_and_unrecognised_credentials_are_sentences(drill):
    drill.world.ecs.inject_fault("DescribeServices", "ExpiredTokenException", count=1)
    with pytest.raises(Forbidden, match="credentials have expired"):
        platform(drill).health()
    drill.world.ecs.inject_fault("DescribeServices", "UnrecognizedClientException", count=1)
    with pytest.raises(Forbidden, match="did not recognise the credentials"):
        platform(drill).health()
    assert platform(drill).health().ready == 3  # the faults were one-offs


def test_throttling_is_retried_and_persistent_throttling_is_a_sentence(drill):
    drill.world.ecs.inject_fault("DescribeServices", "ThrottlingException", count=1)
    drill.server.clear_requests()
    assert platform(drill).health().desired == 3
    assert len([r for r in drill.server.requests if r[1].startswith("/ecs")]) == 2  # one throttled, one retried
    drill.world.ecs.inject_fault("DescribeServices", "ThrottlingException")
    with pytest.raises(Unavailable) as throttled:
        platform(drill, max_attempts=2).health()
    assert "throttled the ECS API (ThrottlingException)" in str(throttled.value) and "after 2 attempts" in str(throttled.value)


def test_unset_credential_variables_are_named_never_their_values(drill, monkeypatch):
    monkeypatch.delenv("ROLLBACK_DRILL_AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(Forbidden) as missing:
        platform(drill).history()
    assert "ROLLBACK_DRILL_AWS_SECRET_ACCESS_KEY" in str(missing.value) and DUMMY_KEY not in str(missing.value)


def test_config_validates_ecs_services():
    base = {"services": [{"name": "a", "platform": "ecs", "cluster": "shop", "region": "us-east-1"}]}
    assert console_config.parse(base).services[0].service is None
    broken = {"services": [{**base["services"][0], "access_key_id_env": "KEY"}]}
    with pytest.raises(console_config.ConfigError, match="secret_access_key_env"):
        console_config.parse(broken)


# --- moto as a second opinion on the request shapes ---------------------------


@pytest.fixture
def moto_url():
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:  # the test extra installs it
        require(False, "moto[server] is not installed (pip install -e '.[test]')")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_the_adapters_requests_are_valid_aws_for_moto(moto_url):
    ecs = client(moto_url)
    ecs.create_cluster(clusterName="shop")
    for version in ("1.2.1", "1.2.2", "1.2.3"):
        ecs.register_task_definition(
            family="order-service",
            containerDefinitions=[{"name": "app", "image": f"registry.example.com/order-service:{version}", "memory": 512}],
        )
    ecs.create_service(cluster="shop", serviceName="order-service", taskDefinition="order-service:3", desiredCount=3)
    adapter = EcsPlatform(
        "order-service", "shop", region="us-east-1", endpoint_url=moto_url, poll_interval=POLL, stability_deadline=0.5,
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET)
        assert [(r.number, r.current) for r in adapter.history()] == [(3, True), (2, False), (1, False)]
        plan = adapter.plan_rollback()
        steps = list(adapter.execute(plan))
    assert steps[0].message.startswith("service order-service updated to task definition order-service:2")
    # moto does not run tasks, so the wait ends at the deadline: a failed step, not a hang.
    assert steps[-1].failed and "did not become stable" in steps[-1].message
    [service] = ecs.describe_services(cluster="shop", services=["order-service"])["services"]
    assert service["taskDefinition"].endswith("order-service:2")


# --- the headless command -----------------------------------------------------


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, **DRILL_CREDENTIAL_ENV}
    return subprocess.run([*PYTHON, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)


@pytest.fixture
def served(tmp_path):
    """`drill ecs-bad-deploy --serve-only --write-config DIR` as a real subprocess."""
    directory = tmp_path / "drill"
    with served_drill("ecs-bad-deploy", "--write-config", str(directory), "--speed", "20") as lines:
        assert any("ECS API:" in line for line in lines)
        yield directory


def test_headless_rollback_of_an_ecs_service(served):
    config = served / "config.yaml"
    result = run("rollback", "order-service", "--config", str(config), "--reason", "x", "--yes", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "POST" in result.stdout and '"taskDefinition": "order-service:2"' in result.stdout
    assert "has reached a steady state: 3/3 tasks of order-service:2 running" in result.stdout
    assert "Rollback of order-service complete. Service healthy." in result.stdout
    endpoint = yaml.safe_load(config.read_text())["services"][0]["endpoint_url"]
    [service] = client(endpoint).describe_services(cluster="shop", services=["order-service"])["services"]
    assert service["taskDefinition"].endswith("task-definition/order-service:2")
    # The rollback is recorded on the service itself, in its tags, where every console reads it.
    tags = client(endpoint).list_tags_for_resource(resourceArn=service["serviceArn"])["tags"]
    [record] = [json.loads(t["value"]) for t in tags if t["key"].startswith("rollback-console.io/rollback-")]
    assert record["why"] == "x" and record["from"] and record["to"] and record["from"] != record["to"]
    # Another console (its own state, another user) asked for revision 3 is refused: it was rolled back from.
    env = {**os.environ, **DRILL_CREDENTIAL_ENV, "USER": "bob", "LOGNAME": "bob", "XDG_STATE_HOME": str(served / "bob-state")}
    again = subprocess.run([*PYTHON, "rollback", "order-service", "--config", str(config), "--reason", "y", "--yes",
                            "--to-revision", "3"],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    assert again.returncode == 3, again.stdout + again.stderr
    assert f"rolled order-service back from {', '.join(record['from'])} to {', '.join(record['to'])}" in again.stdout
    # A second plain rollback never steps further back (to revision 1): not by the same operator ...
    second = run("rollback", "order-service", "--config", str(config), "--reason", "x", "--yes", "--timeout", "60")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"order-service is already on the target {', '.join(record['to'])}" in second.stdout
    # ... nor by another console without an override.
    further = subprocess.run([*PYTHON, "rollback", "order-service", "--config", str(config), "--reason", "y", "--yes"],
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    assert further.returncode == 3, further.stdout + further.stderr
    assert "a plain rollback now would take it further back" in further.stdout
    [service] = client(endpoint).describe_services(cluster="shop", services=["order-service"])["services"]
    assert service["taskDefinition"].endswith("task-definition/order-service:2")


def test_the_written_env_file_is_all_a_console_elsewhere_needs(served):
    """`--write-config`'s env file carries the dummy ECS credentials the config names,
    and without them `status` says which variables are missing, on the service's line."""
    bare = {k: v for k, v in os.environ.items() if k not in DRILL_CREDENTIAL_ENV}
    config = str(served / "config.yaml")
    missing = subprocess.run([*PYTHON, "status", "--config", config], capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, env=bare)
    # Its error rate alone calls for a rollback; the line says what is missing and the next says why.
    assert missing.returncode == 0, missing.stdout + missing.stderr
    assert "order-service: ROLLBACK NOW" in missing.stdout and "Signals unavailable: pod counts" in missing.stdout
    names = " and ".join(DRILL_CREDENTIAL_ENV)
    assert "    No AWS credentials for service \"order-service\"" in missing.stdout and names in missing.stdout
    written = dict(line.split("=", 1) for line in (served / "env").read_text().splitlines())
    assert {k: written[k] for k in DRILL_CREDENTIAL_ENV} == DRILL_CREDENTIAL_ENV
    sourced = subprocess.run([*PYTHON, "status", "--config", config], capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, env={**bare, **written})
    assert sourced.returncode == 0, sourced.stdout + sourced.stderr
    assert "order-service: ROLLBACK NOW" in sourced.stdout
    assert "No AWS credentials" not in sourced.stdout and "Signals unavailable" not in sourced.stdout


def test_headless_rollback_of_an_unknown_ecs_service_is_a_sentence(tmp_path):
    running = start()
    try:
        data = yaml.safe_load(running.config_path.read_text())
        data["services"][0]["service"] = "nope"
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(data))
        result = run("rollback", "order-service", "--config", str(config), "--reason", "x", "--yes")
    finally:
        running.stop()
    assert result.returncode == 2, result.stdout + result.stderr  # a service that does not exist: usage
    assert 'Cannot plan the rollback: ECS service "nope" not found on cluster "shop"' in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_headless_rollback_denied_by_aws_is_a_sentence(tmp_path):
    data = scenario_variant(ecs={"cluster": "shop", "faults": [{"operation": "UpdateService", "error": "AccessDeniedException"}]})
    scenario_file = tmp_path / "denied.yaml"
    scenario_file.write_text(yaml.safe_dump(data))
    running = runner.start(load_scenario(scenario_file), speed=SPEED, start_at=datetime.now(timezone.utc).replace(microsecond=0))
    try:
        result = run("rollback", "order-service", "--config", str(running.config_path), "--reason", "x", "--yes")
    finally:
        running.stop()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Rollback failed: AWS denied ecs:UpdateService" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert DUMMY_SECRET not in result.stdout + result.stderr


# --- the rollback records in the service's tags ------------------------------

RECORD_PREFIX = "rollback-console.io/rollback-"


def record_tag(by: str, at: datetime, from_version: str = "1.2.3", to_version: str = "1.2.2") -> dict:
    """A record tag as a console writes it (key: the prefix and the record's time)."""
    value = {"by": by, "from": [from_version], "to": [to_version], "at": f"{at:%Y-%m-%dT%H:%M:%SZ}", "why": "errors",
             "incident": ""}
    return {"key": f"{RECORD_PREFIX}{at:%Y%m%dT%H%M%S}", "value": json.dumps(value, separators=(",", ":"))}


def test_the_drill_describes_tags_only_when_asked_and_holds_at_most_50(drill):
    from botocore.exceptions import ClientError

    ecs = client(f"{drill.server.url}/ecs")
    [service] = ecs.describe_services(cluster="shop", services=["order-service"])["services"]
    arn = service["serviceArn"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": f"team-{n}", "value": "x"} for n in range(49)])
    assert "tags" not in ecs.describe_services(cluster="shop", services=["order-service"])["services"][0]
    [tagged] = ecs.describe_services(cluster="shop", services=["order-service"], include=["TAGS"])["services"]
    assert len(tagged["tags"]) == 49 and {"key": "team-0", "value": "x"} in tagged["tags"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "team-49", "value": "x"}])
    with pytest.raises(ClientError) as full:
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "one-more", "value": "x"}])
    assert full.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "at most 50 tags" in full.value.response["Error"]["Message"]
    ecs.untag_resource(resourceArn=arn, tagKeys=["team-0", "team-1", "not-there"])
    keys = {t["key"] for t in ecs.list_tags_for_resource(resourceArn=arn)["tags"]}
    assert len(keys) == 48 and "team-0" not in keys and "team-2" in keys


def test_a_record_written_on_the_service_shows_in_the_timeline_within_one_refresh_at_no_extra_request(drill, tmp_path):
    from console.session import Session
    from console.store import Store

    store = Store(tmp_path / "kim.db")
    kim = Session(console_config.load(drill.config_path), store, operator="kim@laptop")
    try:
        operations = drill.server.ecs.operations
        kim.refresh_blocking()  # the first refresh reads the history too
        kim.refresh_blocking()
        start = len(operations)
        kim.refresh_blocking()
        before = operations[start:]  # a refresh's requests, before any record
        assert before and set(before) <= {"DescribeServices", "ListTaskDefinitions", "DescribeTaskDefinition"}
        ecs = client(f"{drill.server.url}/ecs")
        arn = ecs.describe_services(cluster="shop", services=["order-service"])["services"][0]["serviceArn"]
        # Another console (or a person with the aws CLI) records a rollback on the service.
        ecs.tag_resource(resourceArn=arn, tags=[record_tag("bob@laptop", kim.clock.now().replace(microsecond=0))])
        start = len(operations)

        kim.refresh_blocking()  # one refresh

        [noted] = [e for e in kim.events("order-service") if e.actor == "bob@laptop"]
        assert "bob@laptop rolled order-service back from 1.2.3 to 1.2.2 at " in noted.text
        assert operations[start:] == before  # no extra request: the tags come with DescribeServices
        assert "ListTagsForResource" not in operations
    finally:
        kim.close()
        store.close()


def test_two_records_of_the_same_second_keep_a_tag_each(drill):
    """Two consoles record rollbacks in the same second, neither seeing the
    other's tag yet: each gets a key of its own (TagResource keeps only the
    last value written under one key), and both show in the provenance."""
    from console.provenance import RollbackRecord

    ecs = client(f"{drill.server.url}/ecs")
    arn = ecs.describe_services(cluster="shop", services=["order-service"])["services"][0]["serviceArn"]
    now = drill.world.clock.now().replace(microsecond=0)
    adapter = platform(drill)
    base = adapter.plan_rollback()
    plans = [adapter.with_record(base, RollbackRecord(who, ("1.2.3",), ("1.2.2",), now, "errors", "INC-1"))
             for who in ("kim@laptop", "sam@desk")]
    tags = [json.loads(plan.calls[-1].body)["tags"][0] for plan in plans]
    assert tags[0]["key"] != tags[1]["key"]
    assert all(t["key"].startswith(f"{RECORD_PREFIX}{now:%Y%m%dT%H%M%S}-") for t in tags)
    again = adapter.with_record(base, RollbackRecord("kim@laptop", ("1.2.3",), ("1.2.2",), now, "errors", "INC-1"))
    assert json.loads(again.calls[-1].body)["tags"][0] == tags[0]  # the same record, the same tag
    for tag in tags:
        ecs.tag_resource(resourceArn=arn, tags=[tag])
    assert sorted(r.by for r in adapter.provenance().records) == ["kim@laptop", "sam@desk"]


def test_writing_a_record_keeps_the_newest_records_and_never_touches_other_tags(drill):
    from datetime import timedelta

    from botocore.exceptions import ClientError

    from console.provenance import KEEP, RollbackRecord

    ecs = client(f"{drill.server.url}/ecs")
    arn = ecs.describe_services(cluster="shop", services=["order-service"])["services"][0]["serviceArn"]
    now = drill.world.clock.now().replace(microsecond=0)
    olds = [record_tag(f"user{n}@desk", now - timedelta(minutes=60 - n)) for n in range(KEEP + 2)]
    foreign = [{"key": f"team/cost-centre-{n}", "value": "shop"} for n in range(50 - len(olds) - 1)]
    foreign.append({"key": f"{RECORD_PREFIX[:-1]}s-policy", "value": "keep"})  # close, but not the console's prefix
    for batch in (olds, foreign):
        ecs.tag_resource(resourceArn=arn, tags=batch)
    with pytest.raises(ClientError, match="at most 50 tags"):  # without pruning, no record fits any more
        ecs.tag_resource(resourceArn=arn, tags=[record_tag("nobody@desk", now)])
    adapter = platform(drill)
    record = RollbackRecord("kim@laptop", ("1.2.3",), ("1.2.2",), now, "errors", "INC-1")

    plan = adapter.with_record(adapter.plan_rollback(), record)

    untag = next(c for c in plan.calls if c.target.endswith(".UntagResource"))
    pruned = [t["key"] for t in olds[:3]]  # 12 records + the new one: the oldest 3 go
    assert json.loads(untag.body) == {"resourceArn": arn, "tagKeys": pruned}
    assert [c.target.rsplit(".", 1)[1] for c in plan.calls] == ["UpdateService", "UntagResource", "TagResource"]
    [new_tag] = json.loads(plan.calls[-1].body)["tags"]
    key = new_tag["key"]
    assert re.fullmatch(re.escape(f"{RECORD_PREFIX}{now:%Y%m%dT%H%M%S}") + "-[0-9a-f]{8}", key)
    steps = list(adapter.execute(plan))
    assert steps[-1].done and not steps[-1].failed
    [written] = [s.message for s in steps if s.message.startswith("rollback recorded")]
    assert written == (f"rollback recorded in the service's tags ({key}); "
                       f"3 older record tags removed (the newest {KEEP} are kept)")
    tags = {t["key"]: t["value"] for t in ecs.list_tags_for_resource(resourceArn=arn)["tags"]}
    assert {t["key"] for t in foreign} <= set(tags)  # the user's own tags, all of them
    ours = sorted(k for k in tags if k.startswith(RECORD_PREFIX))
    assert ours == sorted([t["key"] for t in olds[3:]] + [key])
    assert len(ours) == KEEP and len(tags) == 50 - 3 + 1
    assert [r.by for r in adapter.provenance().records][-1] == "kim@laptop"
