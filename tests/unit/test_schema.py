"""console.schema: the config's models, checked field by field, every problem
named with where it is and never with the value written there."""

from __future__ import annotations

import pickle
from typing import Annotated, Literal, Union

import pytest

from console import schema
from console.schema import Field, Invalid, Model, Tagged, field_check


class Inner(Model):
    size: int = Field(1, ge=1, le=10)
    ratio: float = Field(0.5, gt=0)
    name: str = Field("x", min_length=1, pattern=r"^[a-z]+$")
    token_env: str | None = None


class Cat(Model):
    kind: Literal["cat"]
    lives: int = 9


class Dog(Model):
    kind: Literal["dog"] = "dog"
    good: bool = True


Pet = Annotated[Union[Cat, Dog], Tagged("kind")]


class Outer(Model):
    url: str
    flag: bool = False
    inner: Inner = Inner()
    inners: list[Inner] = []
    levels: dict[Literal[1, 2], list[str]] = {}
    pets: list[Pet] = []
    argv: Annotated[list[str], Field(min_length=1)] | None = None

    @field_check("url")
    def _http(cls, value: str) -> str:
        if not value.startswith("http"):
            raise ValueError("expected an http URL")
        return value.rstrip("/")

    def _after(self) -> None:
        if self.flag and not self.inners:
            raise ValueError("flag needs inners")


def problems(data) -> list[str]:
    with pytest.raises(Invalid) as caught:
        Outer.validate(data)
    return [f"{schema.location(where)}: {what}" for where, what in caught.value.problems]


def test_a_valid_mapping_becomes_a_frozen_instance_with_defaults():
    outer = Outer.validate({"url": "http://a/", "inners": [{"size": 3.0}], "levels": {1: ["@lead"]},
                            "pets": [{"kind": "cat"}, {}]})
    assert outer.url == "http://a" and outer.flag is False
    assert outer.inners[0].size == 3 and isinstance(outer.inners[0].size, int)
    assert outer.inner == Inner() and outer.levels == {1: ["@lead"]}
    assert [type(p) for p in outer.pets] == [Cat, Dog] and outer.pets[0].lives == 9
    with pytest.raises(AttributeError):
        outer.url = "http://b"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(outer)) == outer
    assert hash(outer) == hash(pickle.loads(pickle.dumps(outer)))
    changed = outer.model_copy(update={"flag": True})
    assert changed.flag is True and outer.flag is False and changed != outer
    with pytest.raises(TypeError):
        outer.model_copy(update={"nope": 1})


def test_mutable_defaults_are_not_shared():
    assert Outer.validate({"url": "http://a"}).inners is not Outer.validate({"url": "http://b"}).inners


@pytest.mark.parametrize("data, expected", [
    ({}, "url: this field is required"),
    ({"url": 5}, "url: expected text, found a whole number"),
    ({"url": "ftp://x"}, "url: expected an http URL"),
    ({"url": "http://a", "flag": 1}, "flag: expected true or false, found a whole number"),
    ({"url": "http://a", "flag": "yes"}, "flag: expected true or false, found text"),
    ({"url": "http://a", "inner": {"size": True}}, "inner.size: expected a whole number, found true or false"),
    ({"url": "http://a", "inner": {"size": 2.5}}, "inner.size: expected a whole number, found a fraction"),
    ({"url": "http://a", "inner": {"size": 0}}, "inner.size: must be at least 1"),
    ({"url": "http://a", "inner": {"size": 11}}, "inner.size: must be at most 10"),
    ({"url": "http://a", "inner": {"ratio": 0}}, "inner.ratio: must be greater than 0"),
    ({"url": "http://a", "inner": {"ratio": "5"}}, "inner.ratio: expected a number, found text"),
    ({"url": "http://a", "inner": {"ratio": float("inf")}}, "inner.ratio: give a finite number (not infinity or NaN)"),
    ({"url": "http://a", "inner": {"ratio": 10**400}}, "inner.ratio: give a finite number (not infinity or NaN)"),
    ({"url": "http://a", "inner": {"name": ""}}, "inner.name: must not be empty"),
    ({"url": "http://a", "inner": {"name": "A1"}}, "inner.name: not in the expected form (it must match ^[a-z]+$)"),
    ({"url": "http://a", "inner": None}, "inner: expected a mapping of settings (key: value), found nothing (null)"),
    ({"url": "http://a", "inner": []}, "inner: expected a mapping of settings (key: value), found a list"),
    ({"url": "http://a", "inners": {}}, "inners: expected a list, found a mapping"),
    ({"url": "http://a", "inners": [{"sise": 2}]}, "inners[0].sise: unknown field (did you mean size?"),
    ({"url": "http://a", "levels": {3: []}}, "levels.3: must be one of 1, 2"),
    ({"url": "http://a", "levels": {True: []}}, "levels.True: must be one of 1, 2"),
    ({"url": "http://a", "argv": []}, "argv: give at least 1 item"),
    ({"url": "http://a", "pets": [{"kind": "cow"}]}, "pets[0]: kind must be one of cat, dog"),
    ({"url": "http://a", "pets": [{"kind": "cat", "good": True}]}, "pets[0].good: unknown field"),
    ({"url": "http://a", "flag": True}, "(top level): flag needs inners"),
])
def test_each_problem_names_where_and_what(data, expected):
    found = problems(data)
    assert any(line.startswith(expected) for line in found), found


def test_every_problem_is_found_at_once():
    found = problems({"url": 1, "flag": 2, "inner": {"size": 0, "extra": 1}})
    assert len(found) == 4, found


def test_a_value_is_never_repeated():
    secret = "https://hooks.slack.com/services/T000/B000/SECRET123"
    found = " ".join(problems({"url": "http://a", "pets": [{"kind": secret}], "inner": {"token_env": secret, "name": secret}}))
    assert "SECRET123" not in found
    assert "inner.token_env: name the environment variable, not its value: this looks like a URL" in found


def test_checking_stops_after_max_problems():
    with pytest.raises(Invalid) as caught:
        Outer.validate({"url": "http://a", "inners": [{"size": 0}] * 10_000})
    assert caught.value.more and len(caught.value.problems) == schema.MAX_PROBLEMS


def test_keyword_construction_checks_too():
    assert Inner(size=2).size == 2
    with pytest.raises(Invalid):
        Inner(size=0)


def test_instances_already_made_are_taken_as_they_are():
    cat = Cat.validate({"kind": "cat"})
    outer = Outer.validate({"url": "http://a", "inner": Inner(size=4), "pets": [cat]})
    assert outer.inner.size == 4 and outer.pets[0] is cat
