"""The Compose platform's pure parts: the one-scalar edit of a compose file,
image references, version ranking, command failures as sentences, and the
`compose` entry of the config. The engine itself is tested in
tests/integration/test_compose.py."""

from __future__ import annotations

import pytest

from console.config import ComposeService, ConfigError, parse
from console.platforms.base import Forbidden, NotFound, PlatformError, Unavailable
from console.platforms.compose import (
    CommandResult,
    command_error,
    registry_path,
    replace_image,
    split_image,
    version_key,
)

NEW = "registry.example.com/order-service:1.2.2"


def edit(text: str, service: str = "order-service") -> str:
    return replace_image(text, service, NEW, "docker-compose.yml")[0]


def test_only_the_image_value_changes_byte_for_byte() -> None:
    text = (
        "# top comment\r\n"
        "x-common: &common\r\n"
        "  restart: always\r\n"
        "services:\r\n"
        "  db:\r\n"
        "    image: postgres:16   # pinned\r\n"
        "  order-service:\r\n"
        "    <<: *common\r\n"
        "    # the release\r\n"
        '    image: "registry.example.com/order-service:1.2.3"  # CI writes this\r\n'
        "    ports:\r\n"
        "    -   \"8080:8080\"\r\n"
        "    environment: {A: 1,   B: 'two'}\r\n"
    )
    result = edit(text)
    assert result == text.replace("order-service:1.2.3", "order-service:1.2.2")


@pytest.mark.parametrize(
    "line",
    [
        "    image: registry.example.com/order-service:1.2.3\n",
        "    image: 'registry.example.com/order-service:1.2.3'\n",
        "    image:    registry.example.com/order-service:1.2.3#not-a-comment\n",
    ],
)
def test_quoting_and_spacing_are_kept(line: str) -> None:
    text = "services:\n  order-service:\n" + line
    if "#not" in line:
        with pytest.raises(PlatformError):
            edit(text)  # the value contains '#': not a one-line value we splice
        return
    assert edit(text) == text.replace("1.2.3", "1.2.2")


def test_a_flow_mapping_service_is_edited_in_place() -> None:
    text = "services:\n  order-service: {image: registry.example.com/order-service:1.2.3, restart: always}\n"
    assert edit(text) == text.replace("1.2.3", "1.2.2")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("services:\n  order-service:\n    image: registry.example.com/order-service:${TAG:-1.2.3}\n", "variable"),
        ("x: &img registry.example.com/order-service:1.2.3\nservices:\n  order-service:\n    image: *img\n", "anchor or alias"),
        ("x: &base\n  image: r/o:1\nservices:\n  order-service:\n    <<: *base\n", "merge key"),
        ("services:\n  order-service:\n    build: .\n", "build"),
        ("services:\n  order-service:\n    image: >-\n      registry.example.com/order-service:1.2.3\n", "by hand"),
    ],
)
def test_values_the_splice_cannot_edit_safely_are_refused(text: str, match: str) -> None:
    with pytest.raises(PlatformError, match=match):
        edit(text)


def test_unknown_service_and_broken_yaml_are_sentences() -> None:
    with pytest.raises(NotFound, match=r"no service 'order-service' \(services: web, db\)"):
        edit("services:\n  web:\n    image: a\n  db:\n    image: b\n")
    with pytest.raises(PlatformError, match=r"docker-compose.yml line \d+ is not valid YAML"):
        edit("services:\n  order-service:\n    image: [a\n")


@pytest.mark.parametrize(
    ("image", "expected", "path"),
    [
        ("registry:5000/app:1.2.3", ("registry:5000/app", "1.2.3"), "app"),
        ("127.0.0.1:5000/team/app", ("127.0.0.1:5000/team/app", None), "team/app"),
        ("nginx:1.27", ("nginx", "1.27"), "library/nginx"),
        ("ghcr.io/org/app@sha256:abc", ("ghcr.io/org/app", None), "org/app"),
        ("localhost/app:v2", ("localhost/app", "v2"), "app"),
    ],
)
def test_image_references(image: str, expected: tuple, path: str) -> None:
    assert split_image(image) == expected
    assert registry_path(expected[0]) == path


def test_tags_rank_by_version_and_non_versions_rank_lowest() -> None:
    tags = ["1.2.10", "latest", "1.2.9", "v1.3.0", "1.3.0-rc1", "main", "1.2"]
    assert sorted(tags, key=version_key) == ["latest", "main", "1.2", "1.2.9", "1.2.10", "1.3.0-rc1", "v1.3.0"]


def failed(stderr: str, rc: int = 1) -> CommandResult:
    argv = ("docker", "compose", "pull", "order-service")
    return CommandResult(" ".join(argv), rc, "", stderr, 0.1, argv=argv)


def test_command_failures_become_typed_sentences() -> None:
    down = command_error(failed("Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?"))
    assert isinstance(down, Unavailable) and "docker_host" in str(down)
    assert str(down).startswith("`docker compose pull order-service` failed: Cannot connect")
    missing = command_error(failed(" order-service Error \nError response from daemon: manifest for r/o:9 not found: manifest unknown: manifest unknown\n", 18))
    assert isinstance(missing, NotFound) and "not in the registry" in str(missing)
    denied = command_error(failed("Error response from daemon: pull access denied for r/o, repository does not exist or may require 'docker login'"))
    assert isinstance(denied, Forbidden) and "docker login" in str(denied)
    plugin = command_error(failed("docker: 'compose' is not a docker command.\nSee 'docker --help'"))
    assert isinstance(plugin, Unavailable) and "compose_command" in str(plugin)
    other = command_error(failed("something odd happened", 3))
    assert type(other) is PlatformError and "(exit 3): something odd happened." in str(other)


def test_config_accepts_a_compose_service_with_paths_relative_to_the_file(tmp_path) -> None:
    config = parse(
        {"services": [{"name": "order-service", "platform": "compose", "compose_file": "stack/docker-compose.yml",
                       "compose_command": ["docker-compose"]}]},
        base_dir=tmp_path,
    )
    [service] = config.services
    assert isinstance(service, ComposeService)
    assert service.compose_file == str(tmp_path / "stack" / "docker-compose.yml")
    assert (service.compose_service, service.previous_container_name) == ("order-service", "order-service_previous_container")
    assert service.compose_command == ["docker-compose"]
    with pytest.raises(ConfigError, match=r"services\[0\]\.compose_file: this field is required"):
        parse({"services": [{"name": "x", "platform": "compose"}]})
