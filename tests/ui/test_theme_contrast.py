"""Every shipped theme is readable: each text colour on each background the
console draws, and the text on each solid severity block, computed from the
theme files in themes/ (WCAG 2 contrast: 7:1 for high contrast, 4.5:1 otherwise)."""

from __future__ import annotations

import pytest
from textual.color import Color

from console.ui import themes

SHIPPED, PROBLEMS = themes.load_themes(themes.shipped_themes_dir())


def test_the_shipped_themes_load() -> None:
    assert not PROBLEMS
    assert {"default", "light", "high-contrast"} <= set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_text_pair_reaches_the_ratio(name: str) -> None:
    need = themes.required_ratio(name)
    pairs = themes.text_pairs(SHIPPED[name])
    assert len(pairs) == len(themes.TEXT_VARIABLES) * len(themes.BACKGROUND_VARIABLES) + len(themes.SOLID_VARIABLES)
    too_low = [f"{pair}: {ratio:.2f}:1" for pair, ratio in pairs if ratio < need]
    assert not too_low, f"{name} needs {need}:1; too low: {too_low}"


def test_the_ratio_is_the_wcag_one() -> None:
    """Known values: black on white 21:1; #ff3030 (the old high-contrast red) under 4:1 with white."""
    assert themes.contrast_ratio(Color.parse("#000000"), Color.parse("#ffffff")) == pytest.approx(21.0)
    assert themes.contrast_ratio(Color.parse("#ffffff"), Color.parse("#ff3030")) == pytest.approx(3.68, abs=0.02)


def test_a_broken_user_theme_is_a_problem_never_a_stop(tmp_path) -> None:
    """A user theme that repeats a key, nests without end, is not a file, or is
    huge is reported as a problem; the shipped themes still load (a bad theme
    must never stop the console in an incident)."""
    import os

    shipped = (themes.shipped_themes_dir() / "default.yaml").read_text()
    (tmp_path / "twice.yaml").write_text(shipped.replace("name: default", "name: twice") + "name: again\n")
    (tmp_path / "deep.yaml").write_text("name: deep\nvariables: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "huge.yaml").write_text("name: huge\n" + "#" * (themes.MAX_THEME_BYTES + 1))
    os.mkfifo(tmp_path / "fifo.yaml")  # opening it for reading would wait for a writer forever
    loaded, problems = themes.load_themes(themes.shipped_themes_dir(), tmp_path)
    assert sorted(p.path.name for p in problems) == ["deep.yaml", "fifo.yaml", "huge.yaml", "twice.yaml"]
    assert {"default", "light", "high-contrast"} <= set(loaded)


def test_themes_read_the_same_through_libyaml() -> None:
    """The shipped themes take libyaml's parser (see console.yamlfile) and read as PyYAML reads them."""
    import yaml

    from console import yamlfile

    for path in sorted(themes.shipped_themes_dir().glob("*.yaml")):
        text = path.read_text()
        assert yamlfile._libyaml_may_read(text), path.name
        assert yamlfile.load_yaml(text) == yaml.safe_load(text)
