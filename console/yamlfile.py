"""Reading the YAML files people write (the config, drill scenarios) strictly:
a key given twice in one mapping is an error, not a silent "last one wins"."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml


class UnreadableFile(Exception):
    """A hand-written file that cannot be read as text; str() says why and what to do."""


def read_hand_written(file: Path, limit: int, what: str) -> str:
    """The text of a hand-written file (a config, a scenario, a kubeconfig),
    read safely: a regular file only (a FIFO would block, /dev/zero never
    ends), at most `limit` bytes, UTF-8. FileNotFoundError when it is not
    there; UnreadableFile (a sentence without the file's name) otherwise."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise UnreadableFile(f"cannot read it: {err.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
            raise UnreadableFile(f"not a regular file ({kind}); point it at the YAML {what} file itself")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise UnreadableFile(f"cannot read it: {err.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnreadableFile(f"larger than {limit // 1024} KiB, too large for a {what} file; check the path")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UnreadableFile(f"not UTF-8 text (byte {err.start} cannot be read); save the file as UTF-8 and try again") from None


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice."""


MAX_DEPTH = 64
"""Collections nested deeper than this are refused (5000 levels would exhaust the stack)."""


class _NoDuplicateKeys:
    """A constructor refusing a mapping that names the same key twice."""

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
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


class _StrictLoader(_NoDuplicateKeys, yaml.SafeLoader):
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


_CStrictLoader = type("_CStrictLoader", (_NoDuplicateKeys, yaml.CSafeLoader), {}) if yaml.__with_libyaml__ else None
"""The same constructor on libyaml's parser, written in C: eight times faster on
a config (2 ms against 17 for twenty services), but with no depth limit of its
own: its composer recurses in C, where deep nesting overflows the stack rather
than raising RecursionError."""

_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _libyaml_may_read(text: str) -> bool:
    """Whether libyaml may build `text`: it parses, and no collection in it
    nests MAX_DEPTH levels deep. Read from libyaml's parser events alone (its
    parser keeps its stack on the heap; nothing is built). A file that fails
    either way goes to the Python parser, which says what is wrong in its own
    words (the same words as ever) or enforces the depth limit."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, _OPEN):
                depth += 1
                if depth >= MAX_DEPTH:  # its scalars would be one level deeper still
                    return False
            elif isinstance(event, _CLOSE):
                depth -= 1
    except yaml.YAMLError:
        return False
    return True


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
    if keep_number_text:
        loader: type = _SourceNumberLoader
    elif _CStrictLoader is not None and _libyaml_may_read(text):
        loader = _CStrictLoader
    else:
        loader = _StrictLoader
    return yaml.load(text, Loader=loader)  # noqa: S506 - SafeLoader subclasses
