"""Every config field is documented: its attribute docstring is the config
reference. Reading the docstrings needs the module's source, tokenized: done
here, never at import (it was a seventh of start-up)."""

from __future__ import annotations

import ast
import inspect

import console.config as config
from console.schema import Model


def _models() -> list[type[Model]]:
    return [
        value for value in vars(config).values()
        if inspect.isclass(value) and issubclass(value, Model) and value.__module__ == config.__name__
    ]


def _documented_fields() -> dict[str, set[str]]:
    """Class name -> fields followed by a string literal (their docstring) in config.py."""
    tree = ast.parse(inspect.getsource(config))
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        documented = out.setdefault(node.name, set())
        for statement, following in zip(node.body, node.body[1:]):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
                and following.value.value.strip()
            ):
                documented.add(statement.target.id)
    return out


def test_every_config_field_has_a_docstring() -> None:
    documented = _documented_fields()
    models = _models()
    assert len(models) > 10  # the check found the config models
    missing = [
        f"{model.__name__}.{name}"
        for model in models
        for name in model.fields()
        if name not in documented.get(model.__name__, set())
        # an inherited field is documented where it is declared
        and not any(name in documented.get(base.__name__, set()) for base in model.__mro__[1:])
    ]
    assert not missing, f"config fields without a docstring (the config reference): {missing}"
