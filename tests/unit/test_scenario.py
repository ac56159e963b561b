"""Scenario files: the shipped ones load, mistakes get sentences naming file and field."""

from __future__ import annotations

import os

import pytest

from console.drill.scenario import ScenarioError, list_scenarios, load_scenario, parse_duration
from console.drill.world import World

BASE = """
name: mini
start: "2024-01-17T14:00:00Z"
services:
  - name: api
    image: registry.example.com/api
    history:
      - {version: "1.0.0", age: 1d}
expect: {action: healthy}
"""


def write(tmp_path, text: str):
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_shipped_scenarios_load_and_build_a_world():
    names = list_scenarios()
    assert "bad-deploy" in names
    for name in names:
        scenario = load_scenario(name)
        assert scenario.name == name
        world = World(scenario, speed=0)
        for service in world.service_names():
            assert world.samples(service), f"{name}: {service} has no metric history"


def test_bad_deploy_is_the_briefed_incident():
    scenario = load_scenario("bad-deploy")
    service = scenario.service("order-service")
    assert (service.namespace, service.replicas, service.container, service.app_label) == ("shop", 3, "app", "order-service")
    assert [h.version for h in service.history] == ["1.2.1", "1.2.2", "1.2.3"]
    assert service.history[-1].age == 120 and service.history[-1].cause == "deploy 1.2.3"
    assert service.versions["1.2.3"].error_rate == 0.08 and service.versions["1.2.3"].latency_p95_ms == 2000
    assert scenario.expect.action == "rollback_now"


def test_a_minimal_file_gets_the_documented_defaults(tmp_path):
    scenario = load_scenario(write(tmp_path, BASE))
    service = scenario.services[0]
    assert (service.namespace, service.kind, service.replicas, service.ready_seconds) == ("default", "deployment", 3, 10.0)
    assert service.behaviour("1.0.0").error_rate == 0.001
    assert service.behaviour("9.9.9") is None
    assert scenario.seed == 0 and scenario.timeline == []


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (("image: registry.example.com/api", "image: registry.example.com/api\n    versions: {'1.0.0': {error_rate: 1.5}}"), "services[0].versions[\"1.0.0\"].error_rate", "less than or equal to 1"),
        (("expect: {action: healthy}", "expect: {action: panic}"), "expect.action", "rollback_now"),
        (("    image: registry.example.com/api\n", "    image: registry.example.com/api\n    colour: red\n"), "services[0].colour", "unknown field"),
        (("age: 1d", "age: soon"), "services[0].history[0].age", "duration"),
        (("expect:", "timeline:\n  - {at: 1m, note: hi, facts: {migration_applied: true}}\nexpect:"), "timeline[0]", "exactly one of"),
        (("expect:", "timeline:\n  - {at: 1m, deploy: {service: web, version: '2'}}\nexpect:"), "timeline[0].deploy.service",
         "'web' is not in services (api)"),
        (("    image: registry.example.com/api\n", "    image: registry.example.com/api\n    replica: 3\n"), "services[0].replica",
         "unknown field (did you mean replicas?)"),
        (("      - {version: \"1.0.0\", age: 1d}", "      - {version: \"0.9.0\", age: 1d}\n      - {version: \"1.0.0\", age: 1d}"),
         "services[0].history", "entry 1 is 86400 s old and entry 0 86400 s"),
        (("    image: registry.example.com/api\n", "    image: registry.example.com/api\n    versions: {'1.0.0': {routes: {/nope: 0.5}}}\n"),
         "services[0].versions[\"1.0.0\"].routes", "'/nope' is not one of the service's routes ('/')"),
        (("    image: registry.example.com/api\n", "    image: registry.example.com/api\n    replicas: 101\n"), "services[0].replicas",
         "less than or equal to 100"),
        (("  - name: api\n", "  - name: Api_1\n"), "services[0].name", "lower-case dns label"),
        (("expect:", "facts: {db_corruption: true}\nexpect:"), "facts.db_corruption", "unknown fact 'db_corruption'; the facts are data_corruption"),
        (("    history:", "    history:\n      - {version: \"0.9.0\", age: 2d, environment: blue}\n"),
         "services[0].history[0].environment", "only blue-green services take one"),
        (("name: mini\n", ""), "name", "field required"),
        (("    image: registry.example.com/api\n", "    image: registry.example.com/api\n    gitops: {tool: argocd, kind: HelmRelease}\n"),
         "services[0].gitops", "kind (kustomization or helmrelease) is for tool flux"),
        (("    image: registry.example.com/api\n", "    image: registry.example.com/api\n    gitops: {tool: flux, kind: Helm}\n"),
         "services[0].gitops.kind", "helmrelease"),
    ],
)
def test_validation_errors_name_file_field_and_expectation(tmp_path, change, field, words):
    old, new = change
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new))
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    message = str(error.value)
    assert str(path) in message
    assert f"field {field}:" in message
    assert words in message.lower()
    assert message.endswith("Fix the file and load it again.")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ScenarioError, match="not found.*bad-deploy"):
        load_scenario("no-such-scenario")
    with pytest.raises(ScenarioError, match="not valid YAML at line 2"):
        load_scenario(write(tmp_path, "name: x\n  bad: [\n"))
    with pytest.raises(ScenarioError, match="mapping of fields"):
        load_scenario(write(tmp_path, "- a list\n"))


def test_blue_green_history_needs_environments(tmp_path):
    text = BASE.replace("    image:", "    kind: blue-green\n    image:")
    with pytest.raises(ScenarioError, match="needs an environment"):
        load_scenario(write(tmp_path, text))


def test_durations():
    assert parse_duration("90s") == 90
    assert parse_duration("1h30m") == 5400
    assert parse_duration(45) == 45
    assert parse_duration("2.5") == 2.5
    with pytest.raises(ValueError):
        parse_duration("ten minutes")


def test_a_scenario_key_given_twice_is_named(tmp_path):
    from console.drill.scenario import ScenarioError, load_scenario

    path = tmp_path / "twice.yaml"
    path.write_text("name: a\nname: b\nservices: []\nexpect: {action: healthy}\n")
    with pytest.raises(ScenarioError, match="'name' is given twice"):
        load_scenario(path)


@pytest.mark.parametrize(
    ("old", "new", "written"),
    [
        ('{version: "1.0.0", age: 1d}', "{version: 1.10, age: 1d}", "1.10"),
        ('{version: "1.0.0", age: 1d}', "{version: 2, age: 1d}", "2"),
        ("    history:", "    versions: {1.10: {error_rate: 0.5}}\n    history:", "1.10"),
    ],
)
def test_a_version_yaml_reads_as_a_number_is_refused_as_written(tmp_path, old, new, written):
    text = BASE.replace(old, new)
    with pytest.raises(ScenarioError) as error:
        load_scenario(write(tmp_path, text))
    message = str(error.value)
    assert f"the version {written} reads as the number" in message
    assert f'quote it ("{written}")' in message


@pytest.mark.parametrize(
    ("extra", "kind", "words"),
    [
        ("canary_weight: 30", "deployment", r"field services\[0\]\.canary_weight: applies to services of kind canary"),
        ("canary_replicas: 2", "blue-green", r"field services\[0\]\.canary_replicas: applies to services of kind canary"),
        ("strategy: Recreate", "ecs", r"field services\[0\]\.strategy: applies to services of kind deployment"),
        ("progress_deadline_seconds: 60", "ecs", r"field services\[0\]\.progress_deadline_seconds: applies"),
        ("ecs: {cluster: shop}", "deployment", r"field services\[0\]\.ecs: ecs settings are for services of kind ecs"),
    ],
)
def test_fields_of_one_kind_are_refused_on_another(tmp_path, extra, kind, words):
    history = '{version: "1.0.0", age: 1d, environment: blue}' if kind == "blue-green" else '{version: "1.0.0", age: 1d}'
    text = BASE.replace("    image:", f"    kind: {kind}\n    {extra}\n    image:").replace('{version: "1.0.0", age: 1d}', history)
    with pytest.raises(ScenarioError, match=words):
        load_scenario(write(tmp_path, text))
    # The same field on its own kind is fine.
    load_scenario(write(tmp_path, BASE.replace("    image:", f"    kind: {kind}\n    image:").replace('{version: "1.0.0", age: 1d}', history)))


def test_a_deploy_event_with_a_track_or_environment_of_another_kind_is_refused(tmp_path):
    for key, words in (("track: canary", r"field timeline\[0\]\.deploy\.track: 'api' is deployment: only canary deploys"),
                       ("environment: blue", r"field timeline\[0\]\.deploy\.environment: 'api' is deployment: only blue-green")):
        text = BASE.replace("expect:", f"timeline:\n  - {{at: 1m, deploy: {{service: api, version: '2', {key}}}}}\nexpect:")
        with pytest.raises(ScenarioError, match=words):
            load_scenario(write(tmp_path, text))


def test_a_bad_expected_action_names_the_runbook_actions(tmp_path):
    with pytest.raises(ScenarioError, match="one of the runbook's actions: rollback_now, investigate"):
        load_scenario(write(tmp_path, BASE.replace("{action: healthy}", "{action: rollback}")))
    with pytest.raises(ScenarioError, match="by must not be negative"):
        load_scenario(write(tmp_path, BASE.replace("{action: healthy}", "{action: healthy, by: -5m}")))


def test_a_duplicate_service_name_names_the_second_one(tmp_path):
    second = BASE.split("services:\n", 1)[1].split("expect:", 1)[0]
    path = write(tmp_path, BASE.replace("expect:", second + "expect:"))
    with pytest.raises(ScenarioError, match=r"field services\[1\]\.name: 'api' is already the name of services\[0\]"):
        load_scenario(path)


@pytest.mark.parametrize("make, words", [
    (lambda path: path.write_bytes(b"name: caf\xe9\n"), "not UTF-8 text (byte 9 cannot be read)"),
    (lambda path: path.symlink_to("/dev/zero"), "not a regular file (a device or socket)"),
    (lambda path: os.mkfifo(path), "not a regular file (a FIFO)"),
    (lambda path: path.write_text(BASE + "#" * (5 * 1024 * 1024)), "larger than 4096 KiB, too large for a scenario file"),
])
def test_a_file_that_cannot_be_a_scenario_is_refused_unread_and_never_waited_for(tmp_path, make, words):
    """Like a config: no traceback for bytes that are not text, no endless read
    of /dev/zero, no wait on a FIFO nobody writes, no huge file read whole."""
    path = tmp_path / "scenario.yaml"
    make(path)
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert str(error.value) == f"Scenario file {path}: {words}" + (
        "; save the file as UTF-8 and try again." if "UTF-8" in words else
        "; point it at the YAML scenario file itself." if "regular" in words else "; check the path.")
