"""The rollout history: `kubectl rollout history` as a table, updated in
place (rows keyed by revision) so the cursor and scroll survive refreshes."""

from __future__ import annotations

from datetime import datetime

from textual.binding import Binding
from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from console.model import ColourRevision, Revision, image_tag, revision_cell

from ..updates import set_subtitle
from .format import NO_VALUE, short_age

# The change cause is the widest and least predictable: it goes last.
# The version first: it is what tells rows apart (a long repository name pushed the tags off
# screen, every row reading "accounts-reconciliation-s"); Enter shows the whole pod template.
COLUMNS = (("current", ""), ("revision", "Rev"), ("image", "Version"), ("age", "Age"), ("cause", "Change cause"))


def short_image(image: str) -> str:
    """"registry.example.com/order-service:1.2.3" -> "order-service:1.2.3" (the
    registry is the same for every row and would push the tag off screen)."""
    return image.rsplit("/", 1)[-1]


def version_cell(revision: Revision) -> str:
    """The revision's versions (image tags), "1.2.3"; with the image's name where
    the revision's containers come from more than one repository."""
    names = {short_image(i).rsplit(":", 1)[0] for i in revision.images}
    if len(names) > 1:
        return ", ".join(short_image(i) for i in revision.images)
    return ", ".join(revision.versions) or NO_VALUE


def _cells(revision: Revision, now: datetime) -> dict[str, Text]:
    # Rich Text, not markup strings: a change cause may contain brackets.
    # No colours here: the current row is marked by shape and weight, which
    # survives every theme; the cursor row is coloured by the theme.
    style = "bold" if revision.current else ""
    images = version_cell(revision)
    return {
        # ↩: where a plain rollback goes, when the platform picked it by evidence (Compose).
        "current": Text("●" if revision.current else "↩" if revision.rollback_target else "", style),
        "revision": Text(revision_cell(revision.number, revision.colour), style, justify="right"),
        "image": Text(images, style),
        "cause": Text(revision.change_cause or NO_VALUE, style),
        "age": Text(short_age(revision.created, now)),
    }


def rollback_number(revision: Revision) -> int | ColourRevision:
    """The `to_revision` that plans a rollback to `revision`: its number, or for
    a blue-green colour the colour with its number (`blue:2`), since the other
    colour's Deployment may carry the same number; the plan then switches to
    that colour, whatever is live by the time it is made."""
    return revision.target


def _key(revision: Revision) -> str:
    """The row key: the number, with the colour for blue-green (both colours may carry one number),
    as `--to-revision` takes it ("3", "blue:2")."""
    return str(revision.target)


def _same(old: object, new: Text) -> bool:
    # Text's == ignores the base style; a row losing "current" changes only that.
    return isinstance(old, Text) and (old.plain, str(old.style), old.spans) == (new.plain, str(new.style), new.spans)


class HistoryTable(DataTable):
    """Revisions of the selected service, oldest first like kubectl; the
    current one is marked. Enter plans a rollback to the highlighted revision."""

    BINDINGS = [
        Binding("enter", "roll_back_to", "Roll back to this", id="history.rollback_to"),
    ]

    class RollbackToRequested(Message):
        """The operator asked to roll back to a specific revision."""

        def __init__(self, revision: int | ColourRevision | None) -> None:
            super().__init__()
            self.revision = revision

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._service: str | None = None
        self._revisions: dict[str, Revision] = {}
        self._cursor_placed = False

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, service: str, history: tuple[Revision, ...], now: datetime) -> None:
        """Bring the table to `history`, changing only what changed."""
        if service != self._service:
            # Another service: its revisions have nothing in common with these.
            self.clear()
            self._revisions = {}
            self._service = service
            self._cursor_placed = False
        wanted = {_key(r): r for r in history}
        for key in [k for k in self._revisions if k not in wanted]:
            self.remove_row(key)
            del self._revisions[key]
        for revision in sorted(history, key=lambda r: (r.number, r.colour or "")):
            cells = _cells(revision, now)
            key = _key(revision)
            if key in self._revisions:
                for column, value in cells.items():
                    if not _same(self.get_cell(key, column), value):
                        self.update_cell(key, column, value)
            else:
                self.add_row(*(cells[c] for c, _ in COLUMNS), key=key)
            self._revisions[key] = revision
        current = next((r for r in history if r.current), None)
        if not self._cursor_placed and current is not None:
            self._cursor_placed = True
            # Start on the running revision: one key up is what an undo goes back to.
            self.move_cursor(row=self.get_row_index(_key(current)), animate=False)
        set_subtitle(self, self._subtitle())

    def _subtitle(self) -> str:
        current = next((r for r in self._revisions.values() if r.current), None)
        if current is None:
            return ""
        return f"current: {current.label} ({', '.join(image_tag(i) for i in current.images)})"

    def highlighted_revision(self) -> Revision | None:
        """The revision under the cursor, if any."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self._revisions.get(key) if key is not None else None

    def action_roll_back_to(self) -> None:
        revision = self.highlighted_revision()
        if revision is not None:
            self.post_message(self.RollbackToRequested(rollback_number(revision)))
