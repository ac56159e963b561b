"""Themes: Textual `Theme` objects loaded from YAML files.

The shipped themes live in `themes/` at the top of the repository; a user
themes folder (passed in by the CLI, usually under the XDG config dir) may add
more or override a shipped one by name. Colours live only in these files: the
app's TCSS refers to the semantic variables (`$sev-critical` ...), so switching
theme recolours everything.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path

import yaml
from textual.color import Color, ColorParseError
from textual.theme import Theme

from console.yamlfile import UnreadableFile, load_yaml, read_hand_written

DEFAULT_THEME = "default"

MAX_THEME_BYTES = 64 * 1024
"""A theme file larger than this is refused unread (a theme is a few dozen lines)."""

# The semantic variables every theme must define; the TCSS relies on them.
SEVERITY_VARIABLES = ("sev-critical", "sev-warning", "sev-ok", "sev-info", "sev-muted")

# Top-level keys a theme file may hold, mirroring textual.theme.Theme.
_THEME_FIELDS = {f.name for f in fields(Theme)}
_COLOUR_FIELDS = (
    "primary", "secondary", "warning", "error", "success", "accent",
    "foreground", "background", "surface", "panel", "boost",
)


def shipped_themes_dir() -> Path:
    """The `themes/` folder that ships with the console: the repository's top
    level in a checkout or editable install, `<prefix>/share/rollback-console/themes`
    in an installed wheel (pyproject's data-files)."""
    checkout = Path(__file__).resolve().parents[2] / "themes"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "rollback-console" / "themes"


@dataclass(frozen=True)
class ThemeProblem:
    """A theme file that could not be used, and why (an operator sentence)."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"Theme file {self.path} was skipped: {self.reason}"


def parse_theme(data: object, path: Path) -> Theme:
    """Build a Theme from one file's parsed YAML; raise ValueError with a sentence."""
    if not isinstance(data, dict):
        raise ValueError("it must be a mapping of theme fields (name, primary, variables ...).")
    unknown = sorted(set(data) - _THEME_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_THEME_FIELDS))}.")
    name = data.get("name") or path.stem
    if not isinstance(name, str):
        raise ValueError("'name' must be a string.")
    if "primary" not in data:
        raise ValueError("the 'primary' colour is required.")
    for key in _COLOUR_FIELDS:
        value = data.get(key)
        if value is not None:
            _check_colour(key, value)
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ValueError("'variables' must be a mapping of variable name to colour.")
    missing = [v for v in SEVERITY_VARIABLES if v not in variables]
    if missing:
        raise ValueError(f"'variables' must define {', '.join(missing)}.")
    for key in SEVERITY_VARIABLES:
        _check_colour(f"variables.{key}", variables[key])
    theme_args = {k: v for k, v in data.items() if k not in ("name", "variables")}
    return Theme(name=name, variables={str(k): str(v) for k, v in variables.items()}, **theme_args)


def _check_colour(key: str, value: object) -> None:
    try:
        Color.parse(str(value))
    except ColorParseError:
        raise ValueError(f"'{key}' is not a colour: {value!r}.") from None


def load_themes(*directories: Path | None) -> tuple[dict[str, Theme], list[ThemeProblem]]:
    """Load every `*.yaml`/`*.yml` theme in `directories`, later folders
    overriding earlier ones by name. Missing folders are skipped; broken files
    are reported as problems, never raised, so one bad user theme cannot stop
    the console in an incident."""
    themes: dict[str, Theme] = {}
    problems: list[ThemeProblem] = []
    for directory in directories:
        if directory is None or not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".yaml", ".yml"):
                continue
            try:
                data = load_yaml(read_hand_written(path, MAX_THEME_BYTES, "theme"))
                theme = parse_theme(data, path)
            except (OSError, yaml.YAMLError) as exc:
                problems.append(ThemeProblem(path, f"it could not be read ({exc.__class__.__name__})."))
                continue
            except UnreadableFile as exc:
                problems.append(ThemeProblem(path, f"it could not be read: {exc}."))
                continue
            except (ValueError, TypeError) as exc:
                problems.append(ThemeProblem(path, str(exc)))
                continue
            themes[theme.name] = theme
    return themes, problems


# -- contrast: every pair of text and background colour the console draws ------------

TEXT_VARIABLES = ("foreground", *SEVERITY_VARIABLES)
"""Colours the console writes text in (TCSS `color:` and styled text)."""

BACKGROUND_VARIABLES = ("background", "surface", "panel")
"""Colours the console writes that text on."""

SOLID_VARIABLES = ("sev-critical", "sev-warning", "sev-ok", "sev-info")
"""Colours used as a solid block (the banner, badges, the writes-frozen strip)
with `color: auto 95%` text on them: the black or white Textual picks."""

HIGH_CONTRAST_RATIO = 7.0
"""WCAG AAA for normal text: what the high-contrast theme must reach on every pair."""

MINIMUM_RATIO = 4.5
"""WCAG AA for normal text: what every other theme must reach on every pair."""


def _luminance(colour: Color) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(colour.r) + 0.7152 * channel(colour.g) + 0.0722 * channel(colour.b)


def contrast_ratio(text: Color, background: Color) -> float:
    """The WCAG 2 contrast ratio of two opaque colours (1 to 21)."""
    lighter, darker = sorted((_luminance(text), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_pairs(theme: Theme) -> list[tuple[str, float]]:
    """Every text-on-background pair the console draws in `theme`, named
    ("sev-muted on panel"), with its contrast ratio."""
    colours = theme.to_color_system().generate()
    colours.update(theme.variables)
    pairs: list[tuple[str, float]] = []
    for bg_name in BACKGROUND_VARIABLES:
        background = Color.parse(colours[bg_name])
        for fg_name in TEXT_VARIABLES:
            text = background + Color.parse(colours[fg_name])
            pairs.append((f"{fg_name} on {bg_name}", contrast_ratio(text, background)))
    for name in SOLID_VARIABLES:
        block = Color.parse(colours[name])
        text = block + block.get_contrast_text(0.95)
        pairs.append((f"auto text on {name}", contrast_ratio(text, block)))
    return pairs


def required_ratio(theme_name: str) -> float:
    """7:1 for high-contrast themes, 4.5:1 for the others."""
    return HIGH_CONTRAST_RATIO if "high-contrast" in theme_name else MINIMUM_RATIO
