"""Who may open the web view: loopback by default; off loopback only with
web.allow_remote and a token the browser presents (then kept in a cookie)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from console.cli import cli
from console.config import ConfigError, load
from console.ui.web import TOKEN_COOKIE, ConsoleWebServer, console_command


def _config(tmp_path: Path, web: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"services": [{"name": "order-service", "platform": "kubernetes",
                                                  "namespace": "shop", "deployment": "order-service"}],
                                    "web": web}))
    return path


def test_a_remote_address_needs_allow_remote(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="allow_remote"):
        load(_config(tmp_path, {"host": "0.0.0.0"}))
    assert load(_config(tmp_path, {"host": "::1"})).web.is_loopback()


def test_a_remote_address_needs_a_token(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ROLLBACK_CONSOLE_WEB_TOKEN", raising=False)
    path = _config(tmp_path, {"host": "0.0.0.0", "allow_remote": True})
    result = CliRunner().invoke(cli, ["web", "--config", str(path)])
    assert result.exit_code == 2
    assert "export ROLLBACK_CONSOLE_WEB_TOKEN" in result.output


def test_follow_runs_viewer_consoles(tmp_path: Path) -> None:
    command = console_command(tmp_path / "config.yaml", follow=True)
    assert command.endswith("--viewer") and "watch --config" in command
    assert "--viewer" not in console_command(tmp_path / "config.yaml", follow=False)


async def test_nothing_is_served_without_the_token() -> None:
    server = ConsoleWebServer("true", host="127.0.0.1", port=0, token="s3cret", public_url="http://127.0.0.1",
                              title="Rollback Console")
    async with TestClient(TestServer(await server._make_app())) as client:
        assert (await client.get("/")).status == 401
        assert (await client.get("/?token=wrong")).status == 401
        assert (await client.get("/ws")).status == 401
        page = await client.get("/?token=s3cret")
        assert page.status == 200
        assert page.cookies[TOKEN_COOKIE].value == "s3cret"
        assert "s3cret" not in await page.text()  # the page itself does not repeat it
        assert page.cookies[TOKEN_COOKIE]["httponly"]
        # The cookie now opens the page without the query (the browser's reloads, the websocket's upgrade).
        assert (await client.get("/")).status == 200
