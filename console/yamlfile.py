"""Reading the YAML files people write (the config, drill scenarios) strictly:
a key given twice in one mapping is an error, not a silent "last one wins"."""

from __future__ import annotations

import yaml


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice."""


MAX_DEPTH = 64
"""Collections nested deeper than this are refused (5000 levels would exhaust the stack)."""


class _StrictLoader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent, index):  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels; no setting needs that", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: dict[object, yaml.Node] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain value (a name or a number), not a list or a mapping",
                    key_node.start_mark,
                )
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                first = seen[key].start_mark
                raise DuplicateKeyError(
                    None,
                    None,
                    f"the key {key!r} is given twice in one mapping (first on line {first.line + 1}); "
                    "keep one of them",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


class SourceInt(int):
    """An int read from YAML that remembers how the file wrote it."""

    source: str = ""


class SourceFloat(float):
    """A float read from YAML that remembers how the file wrote it ("1.10", which is 1.1)."""

    source: str = ""


class _SourceNumberLoader(_StrictLoader):
    def construct_yaml_int(self, node):  # type: ignore[override]
        value = SourceInt(super().construct_yaml_int(node))
        value.source = node.value
        return value

    def construct_yaml_float(self, node):  # type: ignore[override]
        value = SourceFloat(super().construct_yaml_float(node))
        value.source = node.value
        return value


_SourceNumberLoader.add_constructor("tag:yaml.org,2002:int", _SourceNumberLoader.construct_yaml_int)
_SourceNumberLoader.add_constructor("tag:yaml.org,2002:float", _SourceNumberLoader.construct_yaml_float)


def load_yaml(text: str, keep_number_text: bool = False) -> object:
    """Parse YAML like `yaml.safe_load`, refusing duplicate keys. With
    `keep_number_text`, numbers are SourceInt/SourceFloat carrying the text the
    file wrote, so a caller can refuse `version: 1.10` quoting it as written."""
    loader = _SourceNumberLoader if keep_number_text else _StrictLoader
    return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
