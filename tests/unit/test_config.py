"""The config: the example is valid, and every bad input is named precisely."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from console.config import ConfigError, load
from console.decision import Thresholds

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"

MINIMAL = """
services:
  - name: order-service
    namespace: shop
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_example_config_is_valid_and_keeps_the_runbook_numbers():
    config = load(EXAMPLE)
    assert [s.name for s in config.services] == ["order-service", "checkout", "search", "reports", "billing"]
    assert [s.platform for s in config.services] == ["kubernetes", "blue-green", "canary", "compose", "ecs"]
    assert config.decision_thresholds == Thresholds()
    assert config.clusters["production"].kubeconfig == str(Path("~/.kube/config").expanduser())


def test_minimal_config_uses_runbook_defaults(tmp_path):
    config = load(write(tmp_path, MINIMAL))
    thresholds = config.decision_thresholds
    assert thresholds.rollback_error_rate == 0.05
    assert thresholds.investigate_error_rate == 0.01
    assert thresholds.investigate_window == timedelta(minutes=5)
    assert config.services[0].deployment_name == "order-service"


def test_threshold_overrides_reach_the_decision(tmp_path):
    config = load(write(tmp_path, MINIMAL + "thresholds:\n  rollback_error_rate: 0.1\n  investigate_minutes: 10\n"))
    assert config.decision_thresholds.rollback_error_rate == 0.1
    assert config.decision_thresholds.investigate_window == timedelta(minutes=10)


def test_relative_kubeconfig_resolves_against_the_config_file(tmp_path):
    text = MINIMAL.replace("namespace: shop", "namespace: shop\n    cluster: c") + "clusters:\n  c:\n    kubeconfig: kube/config\n"
    config = load(write(tmp_path, text))
    assert config.clusters["c"].kubeconfig == str(tmp_path / "kube" / "config")


def test_queries_substitute_the_service_name(tmp_path):
    config = load(write(tmp_path, MINIMAL))
    service = config.services[0]
    assert config.queries_for(service).render("error_rate", "order-service") == 'service:error_rate:ratio{service="order-service"}'


@pytest.mark.parametrize(
    "text, expected",
    [
        ("services: []\n", "services: give at least 1 item"),
        ("services:\n  - namespace: shop\n", "services[0].name: this field is required"),
        (MINIMAL + "refresh_intervall: 5\n", "refresh_intervall: unknown field"),
        (MINIMAL + "prometheus:\n  url: prometheus:9090\n", "prometheus.url: expected an http:// or https:// URL"),
        (MINIMAL + "thresholds:\n  rollback_error_rate: 0.01\n  investigate_error_rate: 0.02\n",
         "thresholds: investigate_error_rate must be below rollback_error_rate"),
        (MINIMAL.replace("namespace: shop", "namespace: shop\n    cluster: nope"), "'nope' is not under clusters:"),
        ("services:\n  - name: a\n  - name: a\n", "service names must be unique; repeated: a"),
        ("services:\n  - name: a\n    platform: mainframe\n",
         "services[0]: platform must be one of kubernetes, compose, blue-green, canary, ecs"),
        ("- just\n- a list\n", "expected a mapping of settings at the top level, found a list"),
        ("", "expected a mapping of settings at the top level, found an empty file; start from config.example.yaml"),
        ("services: [\n", "not valid YAML"),
    ],
)
def test_bad_configs_name_file_field_and_expectation(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    message = str(err.value)
    assert str(path) in message
    assert expected in message


def test_a_value_pasted_into_the_wrong_field_is_never_repeated(tmp_path):
    """A webhook URL pasted as the platform: the error names the field and the
    choices, never the value (a secret in the wrong place is still a secret)."""
    secret = "https://hooks.slack.com/services/T000/B000/SUPERSECRETXYZ123"
    path = write(tmp_path, f"services:\n  - name: a\n    platform: '{secret}'\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "SUPERSECRET" not in str(err.value) and "platform must be one of" in str(err.value)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="no such file; copy config.example.yaml"):
        load(tmp_path / "absent.yaml")


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True, timeout=60, env=env)


def test_check_config_exit_codes(tmp_path):
    # The example names ~/.kube/config and its context prod-eu-1: check-config checks both exist.
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(
        "apiVersion: v1\nkind: Config\ncontexts:\n- name: prod-eu-1\n  context: {cluster: c, user: u}\n"
    )
    ok = run_cli("check-config", str(EXAMPLE), env={**os.environ, "HOME": str(home)})
    assert ok.returncode == 0, ok.stderr
    no_kubeconfig = run_cli("check-config", str(EXAMPLE), env={**os.environ, "HOME": str(tmp_path / "empty")})
    assert no_kubeconfig.returncode == 2 and "clusters.production.kubeconfig" in no_kubeconfig.stderr
    assert "valid" in ok.stdout
    bad = run_cli("check-config", str(write(tmp_path, "services:\n  - namespace: shop\n")))
    assert bad.returncode == 2
    assert "services[0].name: this field is required" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_version_and_usage_errors():
    version = run_cli("--version")
    assert version.returncode == 0 and "0.1.0" in version.stdout
    usage = run_cli("rollback")
    assert usage.returncode == 2


def test_bare_command_without_a_config_says_where_it_looked(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("ROLLBACK_CONSOLE_CONFIG", None)
    result = subprocess.run([sys.executable, "-m", "console"], capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert str(tmp_path / "rollback-console" / "config.yaml") in result.stderr
    assert "rollback-console drill bad-deploy" in result.stderr


def test_config_path_from_the_environment_is_used(tmp_path):
    bad = write(tmp_path, "services: []\n")
    env = {**os.environ, "ROLLBACK_CONSOLE_CONFIG": str(bad)}
    result = subprocess.run([sys.executable, "-m", "console", "status", "--json"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and str(bad) in result.stderr


def test_a_key_given_twice_is_an_error_not_last_one_wins(tmp_path):
    path = write(tmp_path, MINIMAL + "refresh_interval: 5\nrefresh_interval: 10\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "line 6" in str(err.value) and "first on line 5" in str(err.value)
    assert "'refresh_interval' is given twice" in str(err.value)


def test_the_example_config_names_no_key_twice():
    from console.yamlfile import load_yaml

    load_yaml(EXAMPLE.read_text())  # raises on a duplicate key


def test_the_rollout_timeout_defaults_to_the_platforms_and_is_overridable(tmp_path):
    from console.platforms.base import ROLLOUT_TIMEOUT

    assert load(write(tmp_path, MINIMAL)).rollout_timeout == ROLLOUT_TIMEOUT == 300
    assert load(write(tmp_path, MINIMAL + "rollout_timeout: 45\n")).rollout_timeout == 45
    with pytest.raises(ConfigError, match="rollout_timeout"):
        load(write(tmp_path, MINIMAL + "rollout_timeout: 0\n"))
