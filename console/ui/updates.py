"""Updating a pane's text without reflowing the whole screen.

`Static.update()` asks Textual for a layout by default: on the next frame the
compositor reflows and repaints every widget on the screen, which is most of
what a key or a refresh costs (issue 17). Most updates do not change a
widget's size: the same lines, each as wide as before, in a widget that is
not resized by them. `set_content` repaints only that widget then, does
nothing when the content is the same, and asks for a layout otherwise.

Textual repaints a widget whenever its border title or subtitle is set and
`Digits.update` whenever it is called, to the same text too: a table whose
subtitle is set after each refresh repainted every row each time, when no
row had changed (idle, the console's largest paint). `set_subtitle`,
`set_title` and `set_digits` change nothing when nothing changed.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Digits, Static

__all__ = ["set_content", "set_digits", "set_subtitle", "set_title"]


def _shape(content: object) -> tuple[int, ...] | None:
    """The cell width of each line (what decides the widget's size when its
    width or height is `auto`), or None when it cannot be told cheaply."""
    if isinstance(content, Content):
        plain = content.plain
    elif isinstance(content, str):
        plain = content
    else:
        return None
    return tuple(cell_len(line) for line in plain.split("\n"))


def set_content(widget: Static, content: Content | str) -> None:
    """`widget.update(content)`, reflowing the screen only when its size may change."""
    old = widget.content
    if type(old) is type(content) and old == content:
        return
    markup = getattr(widget, "_render_markup", True)
    shape, before = _shape(content), _shape(old)
    if markup and (isinstance(content, str) or isinstance(old, str)):
        shape = None  # markup: the string is not what is shown
    styles = widget.styles
    if not styles.is_auto_width and not styles.is_auto_height and widget.size.area > 0:
        widget.update(content, layout=False)  # its size does not depend on what it shows
        return
    width = widget.content_size.width
    same_size = (
        shape is not None
        and before is not None
        # An auto width follows the widest line; otherwise only the number of lines counts.
        and (shape == before if styles.is_auto_width else len(shape) == len(before))
        and widget.size.area > 0
        # No line wraps (a wrapped line's height depends on its words, not only its width).
        and max(shape) <= width
    )
    widget.update(content, layout=not same_size)


def set_digits(widget: Digits, value: str) -> None:
    """`widget.update(value)` unless it shows `value` already."""
    if widget.value != value:
        widget.update(value)


def set_title(widget: Widget, title: str) -> None:
    """`widget.border_title = title` unless it is that already (plain text: no markup)."""
    if widget.border_title != title:
        widget.border_title = title


def set_subtitle(widget: Widget, subtitle: str) -> None:
    """`widget.border_subtitle = subtitle` unless it is that already (plain text: no markup)."""
    if widget.border_subtitle != subtitle:
        widget.border_subtitle = subtitle
