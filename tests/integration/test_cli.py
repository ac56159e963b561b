"""The command-line contract, end to end against a served drill world:
`drill --list`, `drill --serve-only --write-config`, `status --json`,
`rollback` with its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import yaml
from support import https_server, served_drill

pytestmark = pytest.mark.integration

PYTHON = [sys.executable, "-m", "console"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*PYTHON, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def served(tmp_path):
    """`drill bad-deploy --serve-only --write-config DIR` as a real subprocess."""
    directory = tmp_path / "drill"
    with served_drill("bad-deploy", "--write-config", str(directory), "--speed", "20"):
        yield directory


def test_drill_list_names_one_scenario_per_line_with_its_row_and_story():
    from console.drill.scenario import list_scenarios

    result = run("drill", "--list")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list_scenarios()
    bad_deploy = next(line for line in lines if line.startswith("bad-deploy "))
    assert "Error rate > 5%" in bad_deploy and "order-service 1.2.3 was deployed two minutes ago." in bad_deploy


def test_drill_check_validates_without_serving(tmp_path):
    from console.drill.scenario import SCENARIO_DIR

    good = run("drill", "--check", str(SCENARIO_DIR / "canary.yaml"))
    assert good.returncode == 0, good.stderr
    assert "valid scenario 'canary'" in good.stdout and "rollback_now" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text((SCENARIO_DIR / "bad-deploy.yaml").read_text().replace('version: "1.2.3", age: 2m', "version: 1.10, age: 2m"))
    refused = run("drill", "--check", str(bad))
    assert refused.returncode == 2
    assert 'quote it ("1.10")' in refused.stderr and "Traceback" not in refused.stderr


def test_unknown_scenario_is_a_usage_error():
    result = run("drill", "no-such-scenario", "--serve-only")
    assert result.returncode == 2
    assert "no-such-scenario" in result.stderr and "Traceback" not in result.stderr


def test_serve_only_writes_a_valid_config_and_kubeconfig(served):
    config = yaml.safe_load((served / "config.yaml").read_text())
    assert config["services"][0]["name"] == "order-service"
    assert (served / "kubeconfig").exists()
    assert run("check-config", str(served / "config.yaml")).returncode == 0


def test_status_json_reports_the_bad_deploy(served):
    result = run("status", "--config", str(served / "config.yaml"), "--json")
    assert result.returncode == 0, result.stderr
    [service] = json.loads(result.stdout)
    assert service["service"] == "order-service"
    assert service["error_rate"] == pytest.approx(0.08)
    assert service["latency_p95_ms"] == pytest.approx(2000)
    assert service["healthy"] is True  # up, just failing 8 %
    assert service["stale"] is False
    assert service["decision"]["action"] == "rollback_now"
    assert "Error rate > 5%: 8.0 %" in service["decision"]["reasons"]


def test_status_of_an_unknown_service_is_a_usage_error(served):
    result = run("status", "nope", "--config", str(served / "config.yaml"), "--json")
    assert result.returncode == 2 and "no service named 'nope'" in result.stderr


def test_headless_rollback_dry_run_changes_nothing(served):
    config = str(served / "config.yaml")
    result = run("rollback", "order-service", "--config", config, "--reason", "error rate 8%", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "revision 3 → 2" in result.stdout and "PATCH /apis/apps/v1/namespaces/shop/deployments/order-service" in result.stdout
    assert "Dry run: nothing was changed." in result.stdout
    # The exact request: with the rollback record the PATCH carries (README "The rollback gate").
    assert '"rollback-console.io/rollbacks": ' in result.stdout and "error rate 8%" in result.stdout.split("PATCH", 1)[1]
    status = json.loads(run("status", "--config", config, "--json").stdout)[0]
    assert status["revision"] == 3


def test_headless_rollback_to_a_revision_that_does_not_exist_is_a_usage_error(served):
    config = str(served / "config.yaml")
    result = run("rollback", "order-service", "--config", config, "--reason", "x", "--to-revision", "9", "--yes")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Cannot plan the rollback: revision 9 not found in the history of deployment/order-service" in result.stdout
    assert "revisions: 1, 2, 3" in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_quick_rollback_is_for_compose_only(served, tmp_path):
    from console.config import load
    from console.platforms.base import PlatformError
    from console.session import Session
    from console.store import Store

    result = run("rollback", "order-service", "--config", str(served / "config.yaml"), "--reason", "x", "--quick", "--yes")
    assert result.returncode == 2
    assert "--quick is the Docker Compose quick rollback; order-service runs on kubernetes" in result.stderr
    # The console's own refusal (the UI's quick choice goes through the session).
    session = Session(load(served / "config.yaml"), Store(tmp_path / "incidents.db"))
    with pytest.raises(PlatformError, match=r"The kubernetes platform of order-service has no quick rollback \(it is the Docker Compose procedure\)"):
        session.plan_rollback("order-service", quick=True)
    assert session.plan_rollback("order-service").to_revision == 2


def test_headless_rollback_without_terminal_needs_yes(served):
    result = run("rollback", "order-service", "--config", str(served / "config.yaml"), "--reason", "x")
    assert result.returncode == 2 and "--yes" in result.stderr


def test_headless_rollback_rolls_back_and_verifies(served):
    config = str(served / "config.yaml")
    result = run("rollback", "order-service", "--config", config, "--reason", "Error rate spiked to 8%", "--yes", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'deployment "order-service" successfully rolled out' in result.stdout
    assert "Rollback of order-service complete. Service healthy." in result.stdout
    kubeconfig = yaml.safe_load((served / "kubeconfig").read_text())
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    deployment = httpx.get(f"{server}/apis/apps/v1/namespaces/shop/deployments/order-service", timeout=5).json()
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/order-service:1.2.2"
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"


def test_an_insecure_kubeconfig_puts_no_warnings_on_the_output(tmp_path):
    """`insecure-skip-tls-verify: true` is the kubeconfig's choice, which kubectl
    honours silently; urllib3 would print a warning per request (across the TUI's
    screen). An HTTPS API server answering 404 to everything stands in."""
    not_found = b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}'
    with https_server(tmp_path, lambda path: (404, not_found)) as (url, _):
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "prod",
            "clusters": [{"name": "prod", "cluster": {"server": url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "me", "user": {"token": "t"}}],
            "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "me", "namespace": "shop"}}],
        }))
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({
            "prometheus": {"url": url},
            "clusters": {"prod": {"kubeconfig": str(kubeconfig)}},
            "services": [{"name": "api", "cluster": "prod", "namespace": "shop", "deployment": "api"}],
        }))
        result = run("status", "--config", str(config))
    assert 'Deployment "api" not found in namespace "shop"' in result.stdout, result.stdout + result.stderr
    assert "Warning" not in result.stderr and "warn" not in result.stderr, result.stderr


def test_commands_on_a_drills_written_config_keep_its_incidents_beside_it(served, tmp_path):
    """README: drill incidents are never in the real incident store. The written
    config names DIR/drill-incidents.db (`incident.store`): status, rollback and
    export use it, and the export says DRILL."""
    import os

    from console.drill.runner import DRILL_SLACK_ENV

    state = tmp_path / "real-state"
    env = {k: v for k, v in os.environ.items() if k != DRILL_SLACK_ENV}  # another test may have exported it
    env["XDG_STATE_HOME"] = str(state)
    config = str(served / "config.yaml")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*PYTHON, *args], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, env=env)

    assert yaml.safe_load((served / "config.yaml").read_text())["incident"] == {"store": "drill-incidents.db"}
    assert cli("status", "--config", config).returncode == 0
    done = cli("rollback", "order-service", "--config", config, "--reason", "drill", "--yes", "--timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    # Slack is configured but its variable is not exported here: said, not silently skipped.
    assert (f"Rollback in Progress message not posted: The environment variable {DRILL_SLACK_ENV} that holds the "
            "Slack webhook URL is not set") in done.stdout
    assert "Rollback Complete message not posted" in done.stdout
    # Right after it, status says the rollback's phase (its decision still reads the 1.2.3 windows).
    watching = cli("status", "--config", config, "--json")
    [service] = json.loads(watching.stdout)
    assert service["phase"]["name"] == "ROLLED BACK (watching)", service["phase"]
    assert "1.2.3 → 1.2.2" in service["phase"]["detail"]
    text = cli("status", "--config", config).stdout
    assert "    ROLLED BACK (watching): 1.2.3 → 1.2.2: signals settle on windows after the rollback in " in text
    assert (served / "drill-incidents.db").exists()
    assert not (state / "rollback-console" / "incidents.db").exists()
    exported = cli("export", "--latest", "--config", config)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("# DRILL bad-deploy: Incident ")
    assert "Rollback started: order-service 1.2.3 -> 1.2.2" in exported.stdout


def test_status_says_a_failing_health_endpoint_before_it_counts_as_down(tmp_path):
    """Pods ready, the health endpoint answering 503: one check is not yet "down"
    (health.failures_before_down: 2), so a one-shot status decides on the other
    signals, and its text says the failed check under the service's line."""
    from support import served_drill

    scenario = tmp_path / "unhealthy.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": "unhealthy", "expect": {"action": "healthy"},
        "services": [{"name": "shop", "image": "registry.example.com/shop",
                      "history": [{"version": "1.0.0", "age": "1d"}, {"version": "1.1.0", "age": "1h"}],
                      "versions": {"1.1.0": {"healthy": False}}}],
    }))
    directory = tmp_path / "drill"
    with served_drill(str(scenario), "--write-config", str(directory)):
        result = run("status", "--config", str(directory / "config.yaml"))
    assert "shop: HEALTHY" in result.stdout, result.stdout + result.stderr
    assert "    health endpoint: HTTP 503 (1 failed check in a row; down after 2)" in result.stdout
