"""The main screen's panes. Each pane takes frozen model data and renders it;
none of them does I/O or keeps state beyond what it shows."""
