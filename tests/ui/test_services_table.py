"""The triage table under refreshes: only rows whose shown values changed are
rebuilt, the order follows the triage keys, a theme change still recolours.

The table runs alone in a small app with the console's own theme files; the
views are decided by the real decision framework (tests/ui/ui_samples.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.strip import Strip
from textual.widgets import DataTable, Input
from ui_samples import NOW, sample_views

from console.decision import Thresholds, evaluate
from console.model import Facts, ServiceView
from console.ui import themes as theme_files
from console.ui.panes import services as services_module
from console.ui.panes.services import ServiceTable

SERVICES = ("order-service", "payment-service", "cart-service")


class _TableApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        loaded, _ = theme_files.load_themes(theme_files.shipped_themes_dir())
        for theme in loaded.values():
            self.register_theme(theme)
        self.theme = theme_files.DEFAULT_THEME

    def compose(self) -> ComposeResult:
        yield ServiceTable(SERVICES, id="services")


def _fresh(views: list[ServiceView]) -> list[ServiceView]:
    """New objects with equal values, as every refresh cycle returns them."""
    return [ServiceView(replace(v.snapshot), v.decision) for v in views]


def _with_error_rate(view: ServiceView, error_rate: float) -> ServiceView:
    snapshot = replace(view.snapshot, metrics=replace(view.snapshot.metrics, error_rate=error_rate))
    return ServiceView(snapshot, evaluate(snapshot, Facts(), NOW, Thresholds()))


def _counting_row_cells(monkeypatch) -> list[str]:
    """Record which rows get their cells built (the real function still builds them)."""
    built: list[str] = []
    real = services_module.row_cells

    def counting(view, now, pinned, colours):
        built.append(view.snapshot.service)
        return real(view, now, pinned, colours)

    monkeypatch.setattr(services_module, "row_cells", counting)
    return built


async def test_a_refresh_rebuilds_only_the_rows_whose_values_changed(monkeypatch) -> None:
    built = _counting_row_cells(monkeypatch)
    app = _TableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(ServiceTable)
        views = sample_views(NOW, SERVICES)
        table.show(views, NOW)
        await pilot.pause()
        assert sorted(built) == sorted(SERVICES)
        cells = {name: table.get_row(name) for name in SERVICES}

        built.clear()
        table.show(_fresh(views), NOW)
        assert built == []
        for name in SERVICES:
            assert all(a is b for a, b in zip(table.get_row(name), cells[name])), name

        built.clear()
        changed = [_with_error_rate(v, 0.004) if v.snapshot.service == "cart-service" else v for v in _fresh(views)]
        table.show(changed, NOW)
        assert built == ["cart-service"]
        assert str(table.get_cell("cart-service", "error")) == "0.40 %"
        for name in ("order-service", "payment-service"):
            assert all(a is b for a, b in zip(table.get_row(name), cells[name])), name

        built.clear()
        table.show(_fresh(changed), NOW + timedelta(days=3))  # every "deployed" age reads differently
        assert sorted(built) == sorted(SERVICES)


async def test_the_order_follows_the_triage_keys_and_the_count_follows_the_decisions() -> None:
    app = _TableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(ServiceTable)
        views = sample_views(NOW, SERVICES)
        table.show(views, NOW)
        await pilot.pause()
        assert table.visible()[0] == "order-service"
        assert table.needing_action == 1
        calmer = _with_error_rate(next(v for v in views if v.snapshot.service == "cart-service"), 0.0001)
        table.show([calmer], NOW)
        assert table.visible() == ["order-service", "payment-service", "cart-service"]
        burning = _with_error_rate(calmer, 0.2)
        table.show([burning], NOW)
        assert table.visible()[0] == "cart-service"
        assert table.needing_action == 2
        assert table.border_subtitle == "2 of 3 need action"


async def test_a_theme_change_recolours_rows_whose_values_did_not_change() -> None:
    app = _TableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(ServiceTable)
        table.show(sample_views(NOW, SERVICES), NOW)
        await pilot.pause()
        before = app.theme_variables["sev-critical"]
        assert before in str(table.get_cell("order-service", "decision").style)
        app.theme = "light"
        for _ in range(20):  # the theme's signal reaches the table a few messages later
            await pilot.pause()
            after = app.theme_variables["sev-critical"]
            if after in str(table.get_cell("order-service", "decision").style):
                break
        assert after != before
        assert after in str(table.get_cell("order-service", "decision").style)
        table.show(sample_views(NOW, SERVICES), NOW)  # the next refresh keeps the new colours
        assert after in str(table.get_cell("order-service", "decision").style)


async def test_pinning_marks_the_row_and_unpinning_clears_it() -> None:
    app = _TableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(ServiceTable)
        views = sample_views(NOW, SERVICES)
        table.show(views, NOW)
        await pilot.pause()
        table.set_pinned("payment-service")
        assert str(table.get_cell("payment-service", "mark")).startswith("⚑")
        table.show(_fresh(views), NOW)
        assert str(table.get_cell("payment-service", "mark")).startswith("⚑")
        table.set_pinned(None)
        assert not str(table.get_cell("payment-service", "mark")).startswith("⚑")


async def test_changed_cells_are_painted_and_a_wider_one_widens_its_column() -> None:
    """A refresh's changed cells are written in one go (`_update_cells`): the
    frame after shows them, and a value wider than its column widens it."""
    app = _TableApp()
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(ServiceTable)
        views = sample_views(NOW, SERVICES)
        table.show(views, NOW)
        await pilot.pause()
        width = table.columns[services_module.ColumnKey("error")].content_width
        requests: list[object] = []
        refresh = table.refresh
        table.refresh = lambda *a, **k: (requests.append(a), refresh(*a, **k))[1]
        wide = [_with_error_rate(v, 123.456) if v.snapshot.service == "cart-service" else v for v in _fresh(views)]
        before = [table.get_row(name) for name in SERVICES]
        table.show(wide, NOW + timedelta(days=3))  # every row's age changes too
        changed = sum(a != b for name, row in zip(SERVICES, before) for a, b in zip(row, table.get_row(name)))
        assert changed >= 4
        whole = [r for r in requests if not r]  # repaints of the whole table (not of a row's region)
        assert len(whole) <= 3 < changed  # one for the cells, not one per cell; the new order's
        await pilot.pause()
        shown = str(table.get_cell("cart-service", "error"))
        assert any(shown in table.render_line(y).text for y in range(table.size.height))
        assert table.columns[services_module.ColumnKey("error")].content_width > width
        assert len(shown) == table.columns[services_module.ColumnKey("error")].content_width


async def test_renders_of_replaced_cells_are_not_kept() -> None:
    """Every render DataTable cached is keyed by its update count: once the cells
    change, the old ones are dropped, not kept until 10,000 have piled up. The
    table's own painted rows are kept for a few screens' worth at most."""
    app = _TableApp()
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(ServiceTable)
        views = sample_views(NOW, SERVICES)
        for day in range(5):
            table.show(_fresh(views), NOW + timedelta(days=day))  # every row's age changes
            await pilot.pause()
        cells = len(SERVICES) * len(services_module.COLUMNS) + len(services_module.COLUMNS)  # rows and header
        assert 0 < len(table._cell_render_cache) <= cells
        assert 0 < len(table._row_strips) <= 4 * table.size.height + 1


class _PaintApp(App[None]):
    """The table in a bordered box, under an input that can take the focus away."""

    CSS = "#box { border: round $primary; height: 1fr; }"

    def __init__(self, services: tuple[str, ...]) -> None:
        super().__init__()
        self.services = services
        loaded, _ = theme_files.load_themes(theme_files.shipped_themes_dir())
        for theme in loaded.values():
            self.register_theme(theme)
        self.theme = theme_files.DEFAULT_THEME

    def compose(self) -> ComposeResult:
        yield Input(id="elsewhere")
        with Vertical(id="box"):
            yield ServiceTable(self.services, id="services")


def _visible(strip: Strip) -> list[tuple[str, Style | None]]:
    """What a line shows: its text and styles (the meta a click reads included),
    empty segments dropped and equal neighbours joined."""
    return [(segment.text, segment.style) for segment in Strip([s for s in strip if s.text]).simplify()]


def _painted_as_datatable(table: ServiceTable) -> int:
    """Check every line on screen against DataTable's own painting of it; how
    many lines the table's painter made itself."""
    table._pseudo_class_state = table.get_pseudo_class_state()  # as render_lines sets it
    table._paint = None
    table._row_strips.clear()
    made = 0
    painter = type(table)._paint_row

    def counting(self, *args):
        nonlocal made
        made += 1
        return painter(self, *args)

    table._paint_row = counting.__get__(table)
    try:
        for y in range(table.size.height):
            assert _visible(table.render_line(y)) == _visible(DataTable.render_line(table, y)), y
    finally:
        del table._paint_row
    return made


async def test_rows_are_painted_as_datatable_paints_them() -> None:
    """The table paints its rows itself (issue 17): line for line, text, colours
    and mouse targets, the same as DataTable's own painting, in every state a
    row can be in."""
    services = tuple(f"svc-{i:03d}" for i in range(60)) + ("order-service",)
    app = _PaintApp(services)
    async with app.run_test(size=(140, 30)) as pilot:
        table = app.query_one(ServiceTable)
        assert _painted_as_datatable(table) == 0  # placeholders before the first refresh: DataTable's
        table.show(sample_views(NOW, services), NOW)
        table.focus()
        await pilot.pause()
        rows = table.size.height - 1  # under the header
        assert _painted_as_datatable(table) == rows
        start = table.cursor_row
        await pilot.press("down", "down", "down")
        await pilot.pause()
        assert table.cursor_row == start + 3
        assert _painted_as_datatable(table) == rows
        app.query_one("#elsewhere").focus()
        await pilot.pause()
        assert _painted_as_datatable(table) == rows  # the blurred cursor
        table.focus()
        await pilot.hover(ServiceTable, offset=(5, 6))
        await pilot.pause()
        assert table._show_hover_cursor
        assert _painted_as_datatable(table) == rows
        table.scroll_to(y=20, animate=False)
        await pilot.pause()
        assert _painted_as_datatable(table) == rows
        table.set_pinned("svc-030")
        app.theme = "light"
        await pilot.pause()
        assert _painted_as_datatable(table) == rows
        await pilot.resize_terminal(50, 20)
        await pilot.pause()
        table.scroll_to(x=12, animate=False)
        await pilot.pause()
        assert table.scroll_offset.x == 12
        assert _painted_as_datatable(table) == table.size.height - 1
        table.set_filter("svc-00")
        await pilot.pause()
        assert _painted_as_datatable(table) == 10


async def test_a_cell_wider_than_its_column_is_painted_by_datatable() -> None:
    """Until the column widens (DataTable measures on idle), DataTable crops the
    cell its own way: the table's painter leaves such a row to it."""
    app = _PaintApp(SERVICES)
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(ServiceTable)
        table.show(sample_views(NOW, SERVICES), NOW)
        await pilot.pause()
        table._data[services_module.RowKey("cart-service")][services_module.ColumnKey("error")] = Text("9" * 40)
        table._update_count += 1
        assert _painted_as_datatable(table) == len(SERVICES) - 1


async def test_a_click_on_a_painted_row_moves_the_cursor_there() -> None:
    app = _PaintApp(SERVICES)
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(ServiceTable)
        table.show(sample_views(NOW, SERVICES), NOW)
        table.focus()
        await pilot.pause()
        assert table.cursor_row == 0
        await pilot.click(ServiceTable, offset=(20, 3))  # under the header: the third row
        await pilot.pause()
        assert table.cursor_row == 2
        assert table.highlighted == table.visible()[2]
