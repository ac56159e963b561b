"""The Textual UI: the only package that imports `textual`.

`console.ui.app.build_app(session, theme=..., animate=...)` builds the app;
the CLI and the tests both use it. Importing this package stays cheap: the
app module (and with it Textual) loads only when asked for.
"""
