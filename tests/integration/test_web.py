"""The web view in a real browser: `rollback-console web` (driver) and
`rollback-console web --follow` (viewer) as real servers on the bad-deploy
drill, Debian's chromium driven by playwright. textual-serve draws on a canvas,
so the text is read from the websocket frames the page receives."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from support import require, require_binary, wait_until

from console.drill import runner
from console.drill.scenario import load_scenario

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
TIMEOUT = 90.0
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(process: subprocess.Popen, port: int) -> bool:
    """Whether the web server answers on `port` yet (a port that is not open yet has nothing to wait on)."""
    assert process.poll() is None, "the web server exited"
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Page:
    """One browser tab on a console, with the text of every frame it received."""

    def __init__(self, browser, url: str) -> None:
        self.chunks: list[str] = []
        self.page = browser.new_page(viewport={"width": 1500, "height": 1000})
        self.page.on("websocket", self._watch)
        self.page.goto(url)

    def _watch(self, ws) -> None:
        ws.on("framereceived", self._frame)

    def _frame(self, payload) -> None:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        self.chunks.append(_ESCAPES.sub("", text))

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def wait_for_text(self, words: str, timeout: float = TIMEOUT) -> None:
        """Let the page run (its event loop delivers the frames) until `words` arrived."""
        deadline = time.monotonic() + timeout
        while words not in self.text:
            assert time.monotonic() < deadline, f"{words!r} never reached the page; last text: {self.text[-2000:]!r}"
            self.page.wait_for_timeout(100)  # playwright's own loop: the frames arrive meanwhile

    def press(self, key: str) -> None:
        self.page.locator("#terminal").click()
        self.page.keyboard.press(key)


@pytest.fixture
def served(tmp_path: Path):
    """The bad-deploy drill, and two web servers on it (driver and follower) sharing one store."""
    require(Path(CHROMIUM).exists(), "chromium is not installed (Debian package chromium; scripts/system-deps.sh)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency (pip install -e .[test])")
    require_binary("kubectl", "kubernetes-client")
    # On wall-clock time: the web consoles are separate processes on the system clock.
    running = runner.start(load_scenario("bad-deploy"), speed=1, directory=tmp_path / "drill",
                           start_at=datetime.now(timezone.utc).replace(microsecond=0))
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        for name, extra in (("driver", []), ("viewer", ["--follow"])):
            port = _free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "console", "web", "--config", str(running.config_path), "--port", str(port),
                 *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            servers[name] = (process, port)
        for process, port in servers.values():
            wait_until(lambda: _listening(process, port), "the web server to listen", timeout=30)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                yield {name: f"http://127.0.0.1:{port}/" for name, (_, port) in servers.items()}, browser
            finally:
                browser.close()
    finally:
        for process, _ in servers.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    # The driver's console asks before quitting while its rollback runs: end the group.
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=20)
        running.stop()


def test_the_banner_the_viewers_keys_and_the_drivers_rollback_in_the_browser(served) -> None:
    urls, browser = served
    driver = Page(browser, urls["driver"])
    driver.wait_for_text("Press r to review the rollback plan")  # the banner's hint under ROLLBACK NOW
    assert "Error rate > 5%" in driver.text

    viewer = Page(browser, urls["viewer"])
    viewer.wait_for_text("VIEWER")
    viewer.wait_for_text("Error rate > 5%")
    # r opens nothing for a viewer; `/` answers (one service), so r was handled before it.
    viewer.press("r")
    viewer.press("/")
    viewer.wait_for_text("nothing to filter")
    assert "Roll back order-service?" not in viewer.text

    driver.press("r")
    driver.wait_for_text("Roll back order-service?")
    driver.press("y")
    driver.wait_for_text("Rollback started")
    # The viewer's timeline shows the driver's rollback at its next refresh (the shared store).
    viewer.wait_for_text("Rollback started")
