"""Every config field is documented: its attribute docstring is the config
reference. pydantic's `use_attribute_docstrings` would copy them into the
schema, but only by tokenizing the module's source at import (a seventh of
start-up), so the check is made here instead, from the source."""

from __future__ import annotations

import ast
import inspect

from pydantic import BaseModel

import console.config as config


def _models() -> list[type[BaseModel]]:
    return [
        value for value in vars(config).values()
        if inspect.isclass(value) and issubclass(value, BaseModel) and value.__module__ == config.__name__
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
        for name in model.model_fields
        if name not in documented.get(model.__name__, set())
        # an inherited field is documented where it is declared
        and not any(name in documented.get(base.__name__, set()) for base in model.__mro__[1:])
    ]
    assert not missing, f"config fields without a docstring (the config reference): {missing}"


def test_config_models_do_not_tokenize_their_source_at_import() -> None:
    assert not config._Model.model_config.get("use_attribute_docstrings")
