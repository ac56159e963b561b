"""`rollback-console web`: the console served to browsers by textual-serve.

Each browser tab gets its own console process (textual-serve runs the command
per connection), all on the same incident store, so a viewer's screen follows
what the driver does at its next refresh. Off loopback, a token is required:
the browser presents `?token=...` once and a cookie carries it after that, to
the websocket too; nothing is served without it.
"""

from __future__ import annotations

import hmac
import shlex
import sys
from pathlib import Path

from aiohttp import web
from textual_serve.server import Server

TOKEN_COOKIE = "rollback_console_token"


def console_command(config_path: Path, follow: bool) -> str:
    """The command each browser connection runs: the console on `config_path`,
    read-only (VIEWER) with `follow`."""
    argv = [sys.executable, "-m", "console", "watch", "--config", str(config_path.resolve())]
    if follow:
        argv.append("--viewer")
    return shlex.join(argv)


class ConsoleWebServer(Server):
    """textual-serve's server, with the token check when one is required."""

    def __init__(self, command: str, host: str, port: int, token: str | None, public_url: str | None,
                 title: str) -> None:
        super().__init__(command, host=host, port=port, title=title, public_url=public_url)
        self.token = token

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        if self.token:
            app.middlewares.append(self._require_token)
        return app

    def _presented(self, request: web.Request) -> str | None:
        return request.query.get("token") or request.cookies.get(TOKEN_COOKIE)

    @web.middleware
    async def _require_token(self, request: web.Request, handler):
        if request.path.startswith("/static/"):
            return await handler(request)  # the page's scripts and fonts: nothing of the incident
        presented = self._presented(request) or ""
        if not hmac.compare_digest(presented.encode(), (self.token or "").encode()):
            return web.Response(status=401, text="A token is required: open the URL with ?token=... "
                                                 "(the value of the server's token environment variable).\n")
        response = await handler(request)
        if request.query.get("token") and isinstance(response, web.StreamResponse) and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, presented, httponly=True, samesite="Strict")
        return response
