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

DEFAULT_THEME = "default"

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
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
                theme = parse_theme(data, path)
            except (OSError, yaml.YAMLError) as exc:
                problems.append(ThemeProblem(path, f"it could not be read ({exc.__class__.__name__})."))
                continue
            except (ValueError, TypeError) as exc:
                problems.append(ThemeProblem(path, str(exc)))
                continue
            themes[theme.name] = theme
    return themes, problems
