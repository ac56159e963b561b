"""Hand-edited and hostile configs: every one is either a valid config or a
ConfigError whose one sentence names the file (and the field), never a
traceback, a hang, or a secret repeated back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.config import MAX_CONFIG_BYTES, ConfigError, check_kubeconfigs, load

MINIMAL = """
services:
  - name: order-service
    namespace: shop
"""


def write(tmp_path: Path, text: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    return message


# --- reading the file ------------------------------------------------------------


def test_a_complex_key_is_refused_with_a_sentence(tmp_path):
    assert "a key must be a plain value" in refused(write(tmp_path, "? [a, b]\n: 1\n" + MINIMAL))


@pytest.mark.parametrize("data", [b"services: \xff\xfe\n", "services: []\n".encode("utf-16")])
def test_a_file_that_is_not_utf8_is_refused(tmp_path, data):
    assert "not UTF-8 text" in refused(write(tmp_path, data))


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    assert load(write(tmp_path, "\ufeff" + MINIMAL)).services[0].name == "order-service"


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    assert "nested deeper than" in refused(write(tmp_path, "services: " + "[" * 5000 + "]" * 5000 + "\n"))


def test_a_symlink_to_dev_zero_is_refused_unread(tmp_path):
    link = tmp_path / "config.yaml"
    link.symlink_to("/dev/zero")
    assert "not a regular file" in refused(link)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    assert "not a regular file (a FIFO)" in refused(fifo)


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "config.yaml").mkdir()
    assert "not a regular file (a directory)" in refused(tmp_path / "config.yaml")


def test_a_huge_file_is_refused_unread(tmp_path):
    path = write(tmp_path, MINIMAL + "#" * (MAX_CONFIG_BYTES + 10) + "\n")
    assert "too large for a config file" in refused(path)


# --- numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("refresh_interval: 1e400", "refresh_interval"),
        ("refresh_interval: .inf", "refresh_interval"),
        ("rollout_timeout: .inf", "rollout_timeout"),
        ("rollout_timeout: -.inf", "rollout_timeout"),
        ("stale_after_intervals: .nan", "stale_after_intervals"),
        ("prometheus: {url: 'http://p:9090', timeout: .inf}", "prometheus.timeout"),
        ("thresholds: {rollback_error_rate: .nan}", "thresholds.rollback_error_rate"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(tmp_path, line, field):
    message = refused(write(tmp_path, MINIMAL + line + "\n"))
    assert f": {field}: " in message and "finite" in message


def test_an_infinite_rollback_timeout_on_the_command_line_is_a_usage_error(tmp_path):
    config = write(tmp_path, MINIMAL)
    for value in ("inf", "nan", "1e400"):
        result = subprocess.run(
            [sys.executable, "-m", "console", "rollback", "order-service", "--config", str(config), "--reason", "x",
             "--dry-run", "--timeout", value],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 2, result.stderr
        assert "not a finite number" in result.stderr and "Traceback" not in result.stderr


# --- secrets written where a variable's name belongs -------------------------------------

SECRETS = [
    ("slack: {webhook_url_env: %s}", "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX", "slack.webhook_url_env"),
    ("prometheus: {url: 'http://p:9090', bearer_token_env: %s}",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjb25zb2xlIn0.c2lnbmF0dXJlc2lnbmF0dXJl", "prometheus.bearer_token_env"),
    ("prometheus: {url: 'http://p:9090', basic_auth_user: u, basic_auth_password_env: %s}", "hunter2!", "prometheus.basic_auth_password_env"),
    ("prometheus: {url: 'http://p:9090', bearer_token_env: %s}", "Zx9Qk2LmP4tR7vW1yB3nC5dF8gH0jK", "prometheus.bearer_token_env"),
]


@pytest.mark.parametrize(("template", "secret", "field"), SECRETS)
def test_a_secret_in_an_env_field_is_refused_without_repeating_it(tmp_path, template, secret, field):
    message = refused(write(tmp_path, MINIMAL + template % yaml.safe_dump(secret).split("\n")[0] + "\n"))
    assert f": {field}: name the environment variable, not its value" in message
    assert secret not in message


def test_an_aws_key_id_in_an_env_field_is_refused(tmp_path):
    text = """
services:
  - name: billing
    platform: ecs
    cluster: prod
    access_key_id_env: AKIAIOSFODNN7EXAMPLE
    secret_access_key_env: AWS_SECRET_ACCESS_KEY
"""
    message = refused(write(tmp_path, text))
    assert "access_key_id_env: name the environment variable" in message and "AKIAIOSFODNN7EXAMPLE" not in message


@pytest.mark.parametrize("name", ["SLACK_WEBHOOK_URL", "PROMETHEUS_TOKEN", "prom_password", "_X1"])
def test_ordinary_variable_names_are_accepted(tmp_path, name):
    assert load(write(tmp_path, MINIMAL + f"slack: {{webhook_url_env: {name}}}\n")).slack.webhook_url_env == name


# --- kubeconfigs ------------------------------------------------------------------


def _kubeconfig(tmp_path: Path, context: str = "prod") -> Path:
    return write(tmp_path, yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
    }), name="kubeconfig")


def _with_cluster(tmp_path: Path, kubeconfig: str, context: str | None) -> Path:
    cluster = {"kubeconfig": kubeconfig, **({"context": context} if context else {})}
    return write(tmp_path, yaml.safe_dump({
        "clusters": {"prod": cluster},
        "services": [{"name": "order-service", "namespace": "shop", "cluster": "prod"}],
    }))


def test_a_missing_kubeconfig_is_named(tmp_path):
    path = _with_cluster(tmp_path, "nope/kubeconfig", None)
    with pytest.raises(ConfigError) as caught:
        check_kubeconfigs(load(path), str(path))
    assert str(caught.value).startswith(f"{path}: clusters.prod.kubeconfig: ")
    assert "does not exist" in str(caught.value)


def test_a_missing_context_is_named_with_the_ones_there_are(tmp_path):
    _kubeconfig(tmp_path, "staging")
    path = _with_cluster(tmp_path, "kubeconfig", "prod")
    with pytest.raises(ConfigError) as caught:
        check_kubeconfigs(load(path), str(path))
    assert "clusters.prod.context: " in str(caught.value) and "(it has: staging)" in str(caught.value)


def test_a_good_kubeconfig_and_context_pass(tmp_path):
    _kubeconfig(tmp_path, "prod")
    path = _with_cluster(tmp_path, "kubeconfig", "prod")
    check_kubeconfigs(load(path), str(path))


def test_check_config_and_a_dry_run_exit_2_on_a_broken_context(tmp_path):
    _kubeconfig(tmp_path, "staging")
    path = _with_cluster(tmp_path, "kubeconfig", "prod")
    for args in (["check-config", str(path)],
                 ["rollback", "order-service", "--config", str(path), "--reason", "x", "--dry-run"]):
        result = subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "clusters.prod.context" in result.stderr and "Traceback" not in result.stderr


# --- property: any mutation is a config or a sentence ----------------------------------------

BASE = yaml.safe_load("""
refresh_interval: 5
rollout_timeout: 300
prometheus: {url: "http://p:9090", timeout: 2, bearer_token_env: PROM_TOKEN}
thresholds: {rollback_error_rate: 0.05}
slack: {webhook_url_env: SLACK_URL}
services:
  - {name: order-service, namespace: shop, health_url: "http://x/health"}
  - {name: billing, platform: ecs, cluster: prod}
""")

leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["https://hooks.slack.com/services/T/B/x", "eyJa.eyJb.c", ".inf", "1e400", "~", "*", "&a"]),
)
value = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=12), inner, max_size=3)),
                     max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, prefix + (index,))


def _mutate(tree, path, new):
    if not path:
        return new
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[path[0]] = _mutate(copy[path[0]], path[1:], new)
    return copy


def _load_or_sentence(path: Path, secret_field: bool = False) -> None:
    try:
        load(path)
    except ConfigError as err:
        message = str(err)
        assert message.startswith(str(path)), message
        assert "Traceback" not in message
        if secret_field:  # a value written where an environment variable's name belongs is never echoed
            assert "hooks.slack.com/services/T/B/x" not in message and "eyJa.eyJb.c" not in message


PATHS = list(_paths(BASE))


@settings(database=None, deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(PATHS), new=value)
def test_any_mutated_config_loads_or_is_one_sentence(tmp_path, where, new):
    secret_field = bool(where) and str(where[-1]).endswith("_env")
    _load_or_sentence(write(tmp_path, yaml.safe_dump(_mutate(BASE, where, new), allow_unicode=True)), secret_field)


@settings(database=None, deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), cut=st.integers(min_value=0, max_value=400))
def test_any_bytes_spliced_into_a_config_load_or_are_one_sentence(tmp_path, data, cut):
    text = yaml.safe_dump(BASE).encode()
    _load_or_sentence(write(tmp_path, text[:cut] + data + text[cut:]))


def test_a_billion_laughs_document_is_refused_quickly(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join(f"*{previous}" for _ in range(9)) + "]")
    lines.append("services: [*i]")
    message = refused(write(tmp_path, "\n".join(lines) + "\n"))
    assert "services[0]" in message
    assert message.count("\n") <= 10  # the first problems and a count, not one line per problem
