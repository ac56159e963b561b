"""The bare-Textual peer of issue 17: a minimal Textual app (one 500-row
`DataTable` and one `Static`) that `bench/app_probe.py --peer` drives with the
same frame probe, terminal size and key sender as the console.

What it costs Textual itself, on this machine at this moment, to paint a
first frame and to move a cursor one row is the yardstick the console's
figures are divided by (the machine is shared, so absolute times move with
its load; the ratios much less).
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

ROWS = 500


class BareTextualApp(App[None]):
    """One 500-row DataTable and one Static; `selected` is the cursor row's key."""

    CSS = "DataTable { height: 1fr; } Static { height: 3; }"

    def __init__(self, rows: int = ROWS) -> None:
        super().__init__()
        self.services = [f"svc-{i:03d}" for i in range(rows)]
        self.selected = self.services[0]

    def compose(self) -> ComposeResult:
        yield Static("bare Textual", id="status")
        yield DataTable(id="services", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("service", "action", "error rate", "p95", "pods")
        for i, name in enumerate(self.services):
            table.add_row(name, "HEALTHY", f"{0.1 + i % 7 / 100:.2f} %", f"{250 + i % 13} ms", "3/3", key=name)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.selected = event.row_key.value
            self.query_one("#status", Static).update(f"selected {self.selected}")
