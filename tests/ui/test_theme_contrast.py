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
