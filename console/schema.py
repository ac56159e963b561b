"""Frozen settings classes checked against what a YAML file holds: the config's models.

A `Model` subclass declares its fields as annotated class attributes, each
followed by its docstring (the config reference; tests/unit/test_config_docs.py
checks every field has one):

    class HealthConfig(Model):
        timeout: float = Field(5.0, gt=0)
        \"\"\"Seconds before ...\"\"\"

`HealthConfig.validate(data)` (or `HealthConfig(**data)`) checks a mapping
against the annotations and constraints and returns a frozen instance, or
raises `Invalid` with every problem found, each with where it is
(`services[2].database.timeout`) and what to write instead. A value is never
repeated in a problem: a secret pasted into the wrong field stays unsaid.

Why not pydantic (issue 17): importing it and building the config's 29 models
was 70 ms of the console's 0.2 s before its first frame, and 13 MB in each of
its two processes. The config needs a small part of it: types read from YAML
(text, numbers, true/false, lists, mappings, nested settings, a choice of
platforms), a few constraints, and a sentence per problem. The drill's scenario
files, read only by drills, still use pydantic.

Types understood: str, int, float, bool, `Literal[...]`, `list[T]`,
`dict[K, V]`, another Model, `T | None`, `Annotated[T, Field(...)]` (a
constrained type: `Argv`), and `Annotated[Union[A, B], Tagged("platform")]`
(one of several models chosen by a field; left out, the one whose field has
a default). Numbers are finite; `int` accepts a
whole float (`3.0`); nothing else is converted (`"5"` is not a number, `1`
is not true).
"""

from __future__ import annotations

import math
import re
import sys
import types
import typing
from typing import Annotated, Any, ClassVar, Literal, Union

MISSING: Any = object()
"""A field without a default: it is required."""

MAX_PROBLEMS = 200
"""Checking stops after this many problems (a file of thousands of bad
entries is not worth reading to the end; the first ones say what is wrong)."""


class Invalid(Exception):
    """The problems found, each a (location, sentence) pair; `location` is a
    tuple of field names and list indexes. `more` is set when checking stopped
    at MAX_PROBLEMS."""

    def __init__(self, problems: list[tuple[tuple, str]], more: bool = False) -> None:
        super().__init__("; ".join(f"{location(where)}: {what}" for where, what in problems[:3]))
        self.problems = problems
        self.more = more


class _TooMany(Exception):
    pass


def location(where: tuple) -> str:
    """`("services", 2, "database")` as `services[2].database`."""
    parts: list[str] = []
    for item in where:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


class Field:
    """A field's default and constraints (as a class attribute's value), or a
    type's constraints (as `Annotated` metadata)."""

    __slots__ = ("default", "gt", "ge", "le", "min_length", "pattern")

    def __init__(self, default: Any = MISSING, *, gt: float | None = None, ge: float | None = None,
                 le: float | None = None, min_length: int | None = None, pattern: str | None = None) -> None:
        self.default = default
        self.gt, self.ge, self.le = gt, ge, le
        self.min_length = min_length
        self.pattern = pattern

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of the right type, or None."""
        if self.gt is not None and not value > self.gt:
            return f"must be greater than {_number(self.gt)}"
        if self.ge is not None and not value >= self.ge:
            return f"must be at least {_number(self.ge)}"
        if self.le is not None and not value <= self.le:
            return f"must be at most {_number(self.le)}"
        if self.min_length is not None and len(value) < self.min_length:
            if isinstance(value, str):
                return "must not be empty"
            return f"give at least {self.min_length} item{'s' if self.min_length != 1 else ''}"
        if self.pattern is not None and not re.search(self.pattern, value):
            return f"not in the expected form (it must match {self.pattern}); see config.example.yaml"
        return None


class Tagged:
    """`Annotated` metadata of a union of models: the field `key` names which one."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


def _number(value: float) -> str:
    return f"{value:g}"


_KINDS = {bool: "true or false", str: "text", int: "a whole number", float: "a number",
          list: "a list", dict: "a mapping (key: value)", type(None): "nothing (null)"}
"""Each type the config holds, in words (bool first: a bool is also an int)."""


def _found(value: Any) -> str:
    """What a value is, in words, never the value itself."""
    for kind, words in _KINDS.items():
        if isinstance(value, kind):
            return "a mapping" if kind is dict else words
    return type(value).__name__


class _Checker:
    """One check of one document: the problems found so far."""

    def __init__(self) -> None:
        self.problems: list[tuple[tuple, str]] = []

    def fail(self, where: tuple, what: str) -> Any:
        self.problems.append((where, what))
        if len(self.problems) >= MAX_PROBLEMS:
            raise _TooMany
        return MISSING

    def check(self, kind: Any, value: Any, where: tuple, constraint: Field | None = None) -> Any:
        """`value` as `kind`, or MISSING after noting what is wrong."""
        origin = typing.get_origin(kind)
        if origin is Annotated:
            inner, *meta = typing.get_args(kind)
            for item in meta:
                if isinstance(item, Tagged):
                    return self.tagged(inner, item.key, value, where)
            field = next((m for m in meta if isinstance(m, Field)), None)
            return self.check(inner, value, where, field)
        if origin is Union or origin is types.UnionType:
            options = typing.get_args(kind)
            if value is None and type(None) in options:
                return None
            options = tuple(o for o in options if o is not type(None))
            if len(options) != 1:  # only `T | None` and Tagged unions are declared
                raise TypeError(f"untagged union {kind!r}")
            return self.check(options[0], value, where, constraint)
        if value is None:
            return self.fail(where, f"expected {self.words(kind)}, found nothing (null)")
        if origin is Literal:
            choices = typing.get_args(kind)
            if any(type(value) is type(choice) and value == choice for choice in choices):
                return value
            return self.fail(where, f"must be one of {', '.join(str(c) for c in choices)}")
        if origin is list:
            if not isinstance(value, list):
                return self.fail(where, f"expected a list, found {_found(value)}")
            (item,) = typing.get_args(kind)
            out = [self.check(item, v, (*where, i)) for i, v in enumerate(value)]
            result = out if MISSING not in out else MISSING
        elif origin is dict:
            if not isinstance(value, dict):
                return self.fail(where, f"expected a mapping (key: value), found {_found(value)}")
            key_kind, value_kind = typing.get_args(kind)
            out_map = {}
            failed = False
            for key, item in value.items():
                checked_key = self.check(key_kind, key, (*where, str(key)))
                checked = self.check(value_kind, item, (*where, str(key)))
                if checked_key is MISSING or checked is MISSING:
                    failed = True
                else:
                    out_map[checked_key] = checked
            result = MISSING if failed else out_map
        elif isinstance(kind, type) and issubclass(kind, Model):
            if isinstance(value, kind):
                return value
            if not isinstance(value, dict):
                return self.fail(where, f"expected a mapping of settings (key: value), found {_found(value)}")
            return kind._check(value, where, self)
        elif kind is bool:
            if not isinstance(value, bool):
                return self.fail(where, f"expected true or false, found {_found(value)}")
            result = value
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return self.fail(where, f"expected a whole number, found {_found(value)}")
            if isinstance(value, float):
                if not math.isfinite(value):
                    return self.fail(where, "give a finite number (not infinity or NaN)")
                if not value.is_integer():
                    return self.fail(where, "expected a whole number, found a fraction")
            result = int(value)
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return self.fail(where, f"expected a number, found {_found(value)}")
            try:
                result = float(value)
            except OverflowError:
                return self.fail(where, "give a finite number (not infinity or NaN)")
            if not math.isfinite(result):
                return self.fail(where, "give a finite number (not infinity or NaN)")
        elif kind is str:
            if not isinstance(value, str):
                return self.fail(where, f"expected text, found {_found(value)}")
            result = str(value)
        elif kind is Any:
            return value
        else:
            raise TypeError(f"no check for {kind!r}")
        if result is not MISSING and constraint is not None:
            problem = constraint.problem(result)
            if problem:
                return self.fail(where, problem)
        return result

    def tagged(self, union: Any, key: str, value: Any, where: tuple) -> Any:
        models: dict[str, type[Model]] = {}
        default = None
        for model in typing.get_args(union):
            kind, field = model.fields()[key]
            (tag,) = typing.get_args(kind)
            models[tag] = model
            if field.default is not MISSING:
                default = model  # the one chosen when `key` is left out
        if isinstance(value, tuple(models.values())):
            return value  # made and checked already
        if not isinstance(value, dict):
            return self.fail(where, f"expected a mapping of settings (key: value), found {_found(value)}")
        tag = value.get(key, MISSING)
        model = default if tag is MISSING else models.get(tag) if isinstance(tag, str) else None
        if model is None:
            # Never the value itself: it may be anything pasted there (a webhook URL).
            return self.fail(where, f"{key} must be one of {', '.join(models)}")
        return model._check(value, where, self)

    @staticmethod
    def words(kind: Any) -> str:
        origin = typing.get_origin(kind)
        if origin is Annotated:
            return _Checker.words(typing.get_args(kind)[0])
        if origin is Literal:
            return "one of " + ", ".join(str(c) for c in typing.get_args(kind))
        if isinstance(kind, type) and issubclass(kind, Model):
            return "a mapping of settings (key: value)"
        return _KINDS.get(origin or kind, "a value")


def field_check(*names: str):
    """A model's own check of fields `names` (after their type's): a function
    (cls, value) -> value raising ValueError with a sentence."""

    def mark(function):
        function.__field_check__ = names
        return classmethod(function)

    return mark


class Model:
    """Frozen settings; subclasses declare fields (see the module's docstring)."""

    __fields: ClassVar[dict[str, tuple[Any, Field]]]
    __field_checks: ClassVar[dict[str, list]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Single inheritance: the parent holds its own fields and checks and its parents'.
        parent = cls.__mro__[1]
        inherited = parent is not Model and issubclass(parent, Model)
        fields: dict[str, tuple[Any, Field]] = dict(parent.__fields) if inherited else {}
        checks: dict[str, list] = {k: list(v) for k, v in parent.__field_checks.items()} if inherited else {}
        for name, kind in cls.__dict__.get("__annotations__", {}).items():
            if name.startswith("_"):
                continue
            if isinstance(kind, str):  # `from __future__ import annotations` in the declaring module
                kind = eval(kind, vars(sys.modules[cls.__module__]), dict(vars(cls)))  # noqa: S307 - the module's own source
            if typing.get_origin(kind) is ClassVar:
                continue
            declared = cls.__dict__.get(name, MISSING)
            field = declared if isinstance(declared, Field) else Field(declared)
            fields[name] = (kind, field)
            if isinstance(declared, Field):
                if declared.default is MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, declared.default)
        for attribute in cls.__dict__.values():
            function = getattr(attribute, "__func__", None)
            for name in getattr(function, "__field_check__", ()):
                checks.setdefault(name, []).append(function)
        cls.__fields = fields
        cls.__field_checks = checks

    @classmethod
    def fields(cls) -> dict[str, tuple[Any, Field]]:
        """Field name -> (its type, its Field): every field, inherited ones first."""
        return cls.__fields

    # -- checking ------------------------------------------------------------------

    @classmethod
    def validate(cls, data: Any):
        """An instance from `data` (a mapping); Invalid naming every problem."""
        checker = _Checker()
        try:
            result = checker.check(cls, data, ())
        except _TooMany:
            raise Invalid(checker.problems, more=True) from None
        if result is MISSING or checker.problems:
            raise Invalid(checker.problems)
        return result

    def __init__(self, **data: Any) -> None:
        checked = type(self).validate(data)
        object.__setattr__(self, "__dict__", checked.__dict__)

    def _after(self) -> None:
        """The model's own checks across its fields, once each field is valid; ValueError with a sentence."""

    @classmethod
    def _check(cls, data: dict, where: tuple, checker: _Checker) -> Any:
        fields = cls.__fields
        values: dict[str, Any] = {}
        failed = False
        for key in data:
            if key not in fields:
                checker.fail((*where, str(key)), _unknown(str(key), fields))
                failed = True
        for name, (kind, field) in fields.items():
            if name in data:
                value = checker.check(kind, data[name], (*where, name), field)
                if value is MISSING:
                    failed = True
                    continue
                try:
                    for function in cls.__field_checks.get(name, ()):
                        value = function(cls, value)
                    if name.endswith("_env") and isinstance(value, str):
                        _env_name(name, value)
                except ValueError as err:
                    checker.fail((*where, name), str(err))
                    failed = True
                    continue
                values[name] = value
            elif field.default is MISSING:
                checker.fail((*where, name), "this field is required")
                failed = True
            else:
                default = field.default
                values[name] = default.copy() if isinstance(default, (list, dict)) else default
        if failed:
            return MISSING
        instance = cls.__new__(cls)
        object.__setattr__(instance, "__dict__", values)
        try:
            instance._after()
        except ValueError as err:
            return checker.fail(where, str(err))
        return instance

    # -- a frozen value ------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: make a changed copy with model_copy(update=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def model_copy(self, update: dict[str, Any] | None = None):
        """A copy with the fields in `update` replaced (not checked again: the caller's values are trusted)."""
        copy = type(self).__new__(type(self))
        values = dict(self.__dict__)
        if update:
            unknown = set(update) - set(type(self).__fields)
            if unknown:
                raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
            values.update(update)
        object.__setattr__(copy, "__dict__", values)
        return copy

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), _hashable(self.__dict__)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"

    def __reduce__(self):
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[Model], values: dict[str, Any]) -> Model:
    """Unpickling: the instance as it was (checked when it was made)."""
    instance = cls.__new__(cls)
    object.__setattr__(instance, "__dict__", dict(values))
    return instance


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def _unknown(key: str, fields: dict) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown field ({hint}check the spelling against config.example.yaml)"


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_AWS_KEY_ID = re.compile(r"(AKIA|ASIA)[A-Z0-9]{16}")


def looks_like(value: str) -> str | None:
    """What an `*_env` value looks like when it is not an environment variable's
    name (None when it is one). The value itself is never put in a message."""
    text = value.strip()
    if "://" in text or text.startswith(("http:", "https:", "postgres")):
        return "a URL"
    if text.count(".") == 2 and text.startswith("eyJ"):
        return "a token (a JWT)"
    if not _ENV_NAME.fullmatch(text):
        return "a value, not a name (a name has only letters, digits and _)"
    if _AWS_KEY_ID.fullmatch(text):
        return "an AWS access key id"
    if len(text) >= 24 and "_" not in text and any(c.isdigit() for c in text) and any(c.islower() for c in text) \
            and any(c.isupper() for c in text):
        return "a secret (a long random string)"
    return None


def _env_name(field: str, value: str) -> None:
    """Fields named `*_env` hold the NAME of an environment variable, never the secret itself."""
    looks = looks_like(value)
    if looks:
        example = field.removesuffix("_env").upper()
        raise ValueError(
            f"name the environment variable, not its value: this looks like {looks}. Put the value in "
            f"an environment variable and write that variable's name here (e.g. {example})"
        )
