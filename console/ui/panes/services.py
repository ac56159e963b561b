"""The triage table: every watched service, most urgent first.

One row per service (key = service name) with its decision, error rate, p95,
ready/desired pods, revision and time since deploy. Cells are updated in
place and the rows re-sorted, so the cursor stays on the service it was on and
the scroll position survives a refresh. `/` filters by name or decision.
"""

from __future__ import annotations

from datetime import datetime

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._segment_tools import line_crop
from textual.binding import Binding
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable, Input
from textual.widgets.data_table import CellKey, ColumnKey, RowKey

from console.decision import needs_action, triage_key
from console.model import ServiceView, revision_cell

from ..updates import set_subtitle
from .format import BADGE, NO_VALUE, SEVERITY, millis, rate, short_age

# The decision column's symbol, so the state never rests on colour alone.
SYMBOL = {"sev-critical": "✖", "sev-warning": "▲", "sev-info": "●", "sev-ok": "✔"}

COLUMNS = (("mark", " "), ("service", "Service"), ("decision", "Decision"), ("error", "Errors"),
           ("p95", "p95"), ("ready", "Ready"), ("revision", "Rev"), ("deployed", "Deployed"))


def row_values(view: ServiceView, now: datetime, pinned: bool) -> tuple:
    """The plain values one service's row shows: equal values, an equal row
    (the refresh then builds no cells for it and touches nothing)."""
    snapshot, decision = view.snapshot, view.decision
    health, current = snapshot.health, snapshot.current_revision
    return (
        decision.action, snapshot.stale, rate(snapshot.metrics.error_rate), millis(snapshot.metrics.latency_p95_ms),
        health.ready, health.desired, current.number if current is not None else None,
        short_age(current.created, now) if current is not None else None, pinned,
    )


def row_cells(view: ServiceView, now: datetime, pinned: bool, colours: dict[str, str]) -> tuple[Text, ...]:
    """The cells of one service's row; `colours` are the theme's variables
    (DataTable cells are Rich text, which knows no `$variables`)."""
    snapshot, decision = view.snapshot, view.decision
    severity = SEVERITY[decision.action]
    health, current = snapshot.health, snapshot.current_revision
    ready = f"{health.ready}/{health.desired}" if health.desired is not None and health.ready is not None else NO_VALUE
    badge = BADGE[decision.action] + (" (stale)" if snapshot.stale else "")
    colour = colours.get(severity, "")
    short = bool(health.desired) and health.ready != health.desired
    return (
        Text(("⚑" if pinned else " ") + SYMBOL[severity], f"bold {colour}"),
        Text(snapshot.service, "bold"),
        Text(badge, f"bold {colour}"),
        Text(rate(snapshot.metrics.error_rate)),
        Text(millis(snapshot.metrics.latency_p95_ms)),
        Text(ready + (" ▲" if short else ""), f"bold {colours.get('sev-warning', '')}" if short else ""),
        Text(revision_cell(current.number, current.colour) if current is not None else NO_VALUE),
        Text(short_age(current.created, now) if current is not None else NO_VALUE),
    )


class ServiceTable(DataTable):
    """The services sorted by severity; the cursor picks which one to pin."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, services: tuple[str, ...], **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._services = services
        self._views: dict[str, ServiceView] = {}
        self._order: list[str] = list(services)
        self.filter_text = ""
        self.pinned: str | None = None
        self._now: datetime | None = None
        # Per service: its triage key, and the values its row was last painted with.
        self._keys: dict[str, tuple] = {}
        self._painted: dict[str, tuple] = {}
        self._urgent: int | None = None
        # Painting (render_line): what holds for the whole paint in progress, the
        # rows painted lately, and their styles with each cell's mouse target.
        self._paint: tuple | None = None
        self._row_strips: dict[tuple, Strip] = {}
        self._targeted: dict[tuple, Style] = {}
        self._styles: dict[tuple, tuple] = {}

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.recolour())
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        for name in self._services:
            self.add_row(Text(" …"), name, Text("waiting…"),
                         *([NO_VALUE] * 5), key=name)

    # -- what the app asks -------------------------------------------------

    @property
    def order(self) -> list[str]:
        """Every service (filtered or not), most urgent first."""
        return list(self._order)

    @property
    def most_urgent(self) -> str | None:
        """The service the banner leads with when none is pinned."""
        return self._order[0] if self._order and self._order[0] in self._views else None

    @property
    def needing_action(self) -> int:
        """How many services' decisions ask for something."""
        if self._urgent is None:
            self._urgent = sum(1 for v in self._views.values() if needs_action(v))
        return self._urgent

    @property
    def highlighted(self) -> str | None:
        """The service under the cursor."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def visible(self) -> list[str]:
        """The rows shown, in order."""
        return [row.key.value for row in self.ordered_rows]

    # -- updates -----------------------------------------------------------

    def show(self, views: list[ServiceView], now: datetime) -> None:
        """Take the latest views: update cells in place and sort again."""
        self._now = now
        resort = False
        for view in views:
            name = view.snapshot.service
            self._views[name] = view
            key = triage_key(view)
            if self._keys.get(name) != key:
                self._keys[name] = key
                resort = True
        self._urgent = None
        if resort:
            self._order = sorted(self._services, key=self._sort_key)
        self._sync()
        urgent = self.needing_action
        set_subtitle(self, f"{urgent} of {len(self._services)} need action" if urgent else "all healthy")

    def set_pinned(self, service: str | None) -> None:
        """Mark `service` as pinned (None: follow the most urgent)."""
        self.pinned = service
        self._sync()

    def recolour(self) -> None:
        """Paint the rows again in the current theme's colours."""
        self._painted.clear()
        self._sync()

    def set_filter(self, text: str) -> None:
        """Show only the services whose name or decision contains `text` (case-insensitive)."""
        self.filter_text = text.strip().lower()
        self._sync()

    def _sort_key(self, name: str) -> tuple:
        key = self._keys.get(name)
        return (1, name) if key is None else (0, key)

    def _matches(self, name: str) -> bool:
        if not self.filter_text:
            return True
        view = self._views.get(name)
        words = name + " " + (BADGE[view.decision.action] if view else "")
        return self.filter_text in words.lower()

    def _sync(self) -> None:
        """Rows to match the filter, cells to match the views, order to match severity;
        the cursor stays on its service."""
        keep = self.highlighted
        wanted = [n for n in self._order if self._matches(n)]
        shown = set(self.visible())
        for name in shown - set(wanted):
            self.remove_row(name)
            self._painted.pop(name, None)
        now = self._now
        colours = None
        # Each column's width so far: a cell as narrow leaves it as it is, and is not
        # measured again (a measure per changed cell was most of a refresh's cost).
        widths = {key: column.content_width for key, column in self.columns.items()}
        changed: list[tuple[str, str, Text, bool]] = []
        for name in wanted:
            view = self._views.get(name)
            if name not in shown:
                self.add_row(*([""] * len(COLUMNS)), key=name)
            if view is None or now is None:
                continue
            values = row_values(view, now, name == self.pinned)
            if self._painted.get(name) == values:
                continue  # nothing this row shows has changed: no cells built, none touched
            colours = colours if colours is not None else self.app.theme_variables
            for (column, _), cell in zip(COLUMNS, row_cells(view, now, name == self.pinned, colours)):
                shown_cell = self.get_cell(name, column)
                # Rich's Text equality ignores the base style: a recolour changes only that.
                if shown_cell != cell or getattr(shown_cell, "style", None) != cell.style:
                    wider = cell.cell_len > widths.get(ColumnKey(column), 0)
                    changed.append((name, column, cell, wider))
                    if wider:
                        widths[ColumnKey(column)] = cell.cell_len
            self._painted[name] = values
        if changed:
            self._update_cells(changed)
        rank = {n: i for i, n in enumerate(wanted)}
        if [r.key.value for r in self.ordered_rows] != wanted:
            self._sort_rows(rank)
        if keep in rank:
            row = self.get_row_index(keep)
            if row != self.cursor_row:
                self.move_cursor(row=row, animate=False, scroll=False)

    def _update_cells(self, cells: list[tuple[str, str, Text, bool]]) -> None:
        """DataTable.update_cell for each (row, column, value, wider), with one
        repaint request for them all: update_cell asks for one each time, and at
        500 services a refresh's few thousand requests were 40 % of applying it
        (issue 17). The same state changes as update_cell's, on the pinned
        Textual's DataTable (tests/ui/test_services_table.py checks the result)."""
        for row, column, value, wider in cells:
            row_key, column_key = RowKey(row), ColumnKey(column)
            self._data[row_key][column_key] = value
            if wider:
                self._updated_cells.add(CellKey(row_key, column_key))
                self._require_update_dimensions = True
        self._update_count += 1
        # What the table rendered before is keyed by the old update count: never read again.
        # Dropped now rather than held until it ages out (up to 10,000 cells' renders).
        for cache in (self._cell_render_cache, self._row_render_cache, self._row_renderable_cache, self._line_cache):
            cache.clear()
        self.refresh()

    # -- painting ----------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # What the lines share, worked out once per paint (as DataTable.render_lines
        # then sets the pseudo-class state, which the cursor's style depends on).
        self._pseudo_class_state = self.get_pseudo_class_state()
        self._paint = self._paint_state()
        try:
            return super().render_lines(crop)
        finally:
            self._paint = None

    def render_line(self, y: int) -> Strip:
        """A line of the table, as DataTable paints it, for less. After a
        refresh every row on screen shows new figures (and most have moved),
        and DataTable renders each cell through Rich's layout: padding,
        wrapping, cropping, half the paint that follows a refresh at 500
        services (issue 17). A row of one-line, unwrapped cells is made here
        from the same styles in a few segments, and kept while its values, its
        place and the styles stay the same. Anything else (the header, a cell
        wider than its column, styled spans) is DataTable's own.
        tests/ui/test_services_table.py checks line for line that both paint
        the same."""
        paint = self._paint if self._paint is not None else self._paint_state()
        if not paint:
            return super().render_line(y)
        header, scroll_x, scroll_y, width, base_style, columns, cursor_row, hover_row, key = paint
        offsets = self._y_offsets
        at = y + scroll_y - header
        if y < header or at >= len(offsets):
            return super().render_line(y)
        row_key, line = offsets[at]
        cells = self._data.get(row_key)
        if line or cells is None or self.rows[row_key].height != 1:
            return super().render_line(y)
        shown = []
        for column, room in columns:
            value = cells.get(column)
            if (type(value) is not Text or value._spans or value.justify or value.overflow
                    or "\n" in value.plain or "\t" in value.plain or value.cell_len > room):
                return super().render_line(y)
            shown.append((value.plain, value.style))
        row = self._row_locations.get(row_key)
        strip_key = (row_key, row, tuple(shown), row == cursor_row, row == hover_row, key)
        strip = self._row_strips.get(strip_key)
        if strip is None:
            if len(self._row_strips) > 4 * max(1, self.size.height):
                self._row_strips.clear()
            strip = self._row_strips[strip_key] = self._paint_row(
                row, shown, columns, base_style, row == cursor_row, row == hover_row, scroll_x, width, key)
        return strip

    def _paint_state(self) -> tuple:
        """What every line of this paint shares (empty: not a table this painter knows)."""
        if (self.cursor_type != "row" or self.fixed_columns or self.fixed_rows or self.zebra_stripes
                or (self._labelled_row_exists and self.show_row_labels)):
            return ()
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        padding = self.cell_padding
        columns = tuple((column.key, column.get_render_width(self) - 2 * padding) for column in self.ordered_columns)
        base_style = self.rich_style
        header = self.get_row_height(self._header_row_key) if self.show_header else 0
        cursor_row = self.cursor_coordinate.row
        hover_row = self.hover_coordinate.row
        key = (width, scroll_x, padding, columns, base_style, self.show_cursor, self._show_hover_cursor,
               self.cursor_foreground_priority, self.cursor_background_priority, self._pseudo_class_state,
               self.get_component_rich_style("datatable--cursor"), self.get_component_rich_style("datatable--hover"))
        return (header, scroll_x, scroll_y, width, base_style, columns, cursor_row, hover_row, key)

    def _paint_row(self, row: int, shown: list[tuple[str, str | Style]], columns: tuple, base_style: Style,
                   cursor: bool, hover: bool, scroll_x: int, width: int, paint_key: tuple) -> Strip:
        """One row's line: DataTable's cell by cell (pre-style, the cell's text
        style, post-style, the mouse target as meta), then the row's fill to the edge."""
        pad_style, text_style, extend_style = self._row_styles(base_style, cursor, hover, paint_key)
        target = self._target
        padding = " " * self.cell_padding
        segments: list[Segment] = []
        append = segments.append
        for column, ((text, style), (_, room)) in enumerate(zip(shown, columns)):
            pad = target(pad_style, row, column)
            if text:
                append(Segment(padding, pad))
                append(Segment(text, target(text_style(style), row, column)))
                append(Segment(" " * (room - cell_len(text)) + padding, pad))
            else:
                append(Segment(padding + " " * room + padding, pad))
        table_width = sum(room for _, room in columns) + 2 * len(columns) * self.cell_padding
        append(Segment(" " * max(0, width - table_width),
                       extend_style + Style.from_meta({"row": row, "column": 0, "out_of_bounds": True})))
        if scroll_x or table_width > width:
            return Strip(line_crop(segments, scroll_x, scroll_x + width, width)).adjust_cell_length(width, base_style).simplify()
        return Strip(segments, width).simplify()

    def _row_styles(self, base_style: Style, cursor: bool, hover: bool, paint_key: tuple) -> tuple:
        """A row's padding style, its text style for a cell's style, and its fill
        style, as DataTable builds them (kept while the paint's styles, which
        `paint_key` holds, stay the same)."""
        key = (paint_key, cursor, hover)
        styles = self._styles.get(key)
        if styles is None:
            component, post = self._get_styles_to_render_cell(
                False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
                self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
            extend, _ = self._get_styles_to_render_cell(
                False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor, False, False)
            get_style = self.app.console.get_style
            texts: dict = {}

            def text_style(style: str | Style) -> Style:
                found = texts.get(style)
                if found is None:
                    found = texts[style] = base_style + component + get_style(style, default=Style.null()) + post
                return found

            if len(self._styles) > 64:
                self._styles.clear()
            styles = self._styles[key] = (base_style + component + post, text_style, base_style + extend)
        return styles

    def _target(self, style: Style, row: int, column: int) -> Style:
        """`style` with the cell's place as meta (what a click or a hover reads),
        the same few styles at the same places from one paint to the next."""
        key = (style, row, column)
        targeted = self._targeted.get(key)
        if targeted is None:
            if len(self._targeted) > 20_000:
                self._targeted.clear()
            targeted = self._targeted[key] = style + Style.from_meta({"row": row, "column": column})
        return targeted

    def _sort_rows(self, rank: dict[str, int]) -> None:
        # DataTable.sort passes the cell values; the service column names the row.
        self.sort("service", key=lambda name: rank.get(str(name), len(rank)))


class ServiceFilter(Input):
    """The `/` filter: Enter keeps it, Esc clears and closes it."""

    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=True)]

    def action_clear_filter(self) -> None:
        """Clear the filter (every service shows again) and go back to the table."""
        self.value = ""
        self.display = False
        self.disabled = True
        self.screen.query_one(ServiceTable).focus()
