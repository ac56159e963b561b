"""console.yamlfile: strict YAML reading, on libyaml's parser where it is safe
and on PyYAML's Python parser (which enforces the depth limit) otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from console import yamlfile
from console.yamlfile import MAX_DEPTH, DuplicateKeyError, load_yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML was built without libyaml")


def nested(levels: int) -> str:
    return "a: " + "[" * levels + "1" + "]" * levels


def test_a_config_reads_through_libyaml_as_pyyaml_reads_it() -> None:
    text = (ROOT / "config.example.yaml").read_text()
    assert yamlfile._libyaml_may_read(text)
    assert load_yaml(text) == yaml.safe_load(text)


def test_nesting_near_the_limit_reads_the_same_on_either_side_of_it() -> None:
    # A scalar inside MAX_DEPTH - 2 lists and the top mapping: MAX_DEPTH nodes deep, the most allowed.
    deepest = nested(MAX_DEPTH - 2)
    assert yamlfile._libyaml_may_read(deepest)
    assert load_yaml(deepest) == yaml.safe_load(deepest)
    # One more level: libyaml is not asked; the Python parser refuses it, as it always did.
    assert not yamlfile._libyaml_may_read(nested(MAX_DEPTH - 1))
    with pytest.raises(yaml.YAMLError, match="nested deeper than 64 levels"):
        load_yaml(nested(MAX_DEPTH - 1))


@pytest.mark.parametrize("text", [nested(5000), "? " * 5000 + "a", "- " * 5000 + "a"])
def test_deep_nesting_is_refused_without_reaching_libyaml(text: str) -> None:
    """libyaml's composer recurses in C: 5000 levels would overflow the stack, not raise."""
    assert not yamlfile._libyaml_may_read(text)
    with pytest.raises((yaml.YAMLError, RecursionError)):
        load_yaml(text)


def test_a_syntax_error_is_reported_by_the_python_parser_with_its_place() -> None:
    text = "services:\n  - name: web\n    replicas: [1, 2\n"
    assert not yamlfile._libyaml_may_read(text)
    with pytest.raises(yaml.YAMLError) as caught:
        load_yaml(text)
    assert caught.value.problem_mark is not None
    assert str(caught.value) == str(pytest.raises(yaml.YAMLError, yaml.load, text, Loader=yamlfile._StrictLoader).value)


def test_a_duplicate_key_is_refused_on_the_libyaml_path_with_both_lines() -> None:
    text = "refresh_interval: 5\nui:\n  theme: dark\nrefresh_interval: 10\n"
    assert yamlfile._libyaml_may_read(text)
    with pytest.raises(DuplicateKeyError) as caught:
        load_yaml(text)
    assert "the key 'refresh_interval' is given twice in one mapping (first on line 1)" in str(caught.value)
    assert caught.value.problem_mark.line + 1 == 4
