"""The Slack notifier against real HTTP servers: the drill world's webhook
sink, and small local servers that fail, throttle or hang."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from support import require

from console import checklist as cl
from console import comms
from console import incident as inc
from console.clock import FrozenClock
from console.model import Health, Metrics, RollbackPlan
from console.slack import SlackNotifier, deliver, resend_pending
from console.store import Store

pytestmark = pytest.mark.integration

T0 = datetime(2024, 1, 17, 14, 45, tzinfo=timezone.utc)
TOKEN = "T0/B0/very-secret-token"
PLAN = RollbackPlan("order-service", "kubernetes", 3, 2,
                    ("registry.example.com/order-service:1.2.3",), ("registry.example.com/order-service:1.2.2",))


class Recorder:
    """Stands in for time.sleep: records the backoff delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


# --- servers ------------------------------------------------------------------------------


@pytest.fixture
def drill() -> Iterator:
    """The drill world's server (its Slack sink at /slack/webhook/TOKEN)."""
    try:
        from console.drill.scenario import load_scenario
        from console.drill.server import DrillServer
        from console.drill.world import World
    except ImportError as exc:
        require(False, f"the drill world cannot be imported: {exc}")
        raise
    server = DrillServer(World.from_scenario(load_scenario("bad-deploy"), speed=100.0)).start()
    try:
        yield server
    finally:
        server.stop()


def recorded(server) -> list[dict]:
    return [m["payload"] for m in httpx.get(f"{server.url}/slack/messages", timeout=5).json()["messages"]]


class Scripted:
    """A local webhook that answers from a script of (status, body, headers),
    then 200 "ok"; it records every body it got."""

    def __init__(self, script: list[tuple[int, str, dict[str, str]]]) -> None:
        self.script = list(script)
        self.bodies: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                owner.bodies.append(json.loads(self.rfile.read(length)))
                status, body, headers = owner.script.pop(0) if owner.script else (200, "ok", {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/services/{TOKEN}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator:
    servers: list[Scripted] = []

    def make(*script: tuple[int, str, dict[str, str]]) -> Scripted:
        servers.append(Scripted(list(script)))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def hanging(hanging_server) -> str:
    """A webhook URL whose server accepts connections and never answers."""
    return f"{hanging_server.url}/services/{TOKEN}"


@pytest.fixture
def closed_port_url(closed_port: int) -> str:
    return f"http://127.0.0.1:{closed_port}/services/{TOKEN}"


def assert_secret_free(*texts: str) -> None:
    for text in texts:
        assert "very-secret-token" not in text
        assert TOKEN not in text


# --- the notifier ----------------------------------------------------------------------


def test_sends_a_runbook_message_to_the_drill_sink(drill):
    notifier = SlackNotifier(f"{drill.url}/slack/webhook/{TOKEN}")
    message = comms.rolling_back("order-service", "Error rate spiked to 8%")
    result = notifier.send_message(message)
    assert (result.ok, result.status, result.error, result.attempts) == (True, 200, None, 1)
    assert recorded(drill) == [{"text": "🚨 Rolling back order-service: Error rate spiked to 8%"}]
    assert_secret_free(*(path for _, path, _ in drill.requests))


def test_retries_server_errors_with_backoff_then_succeeds(scripted, caplog):
    server = scripted((500, "boom", {}), (500, "boom", {}))
    sleep = Recorder()
    notifier = SlackNotifier(server.url, retries=3, backoff=0.5, sleep=sleep)
    with caplog.at_level(logging.WARNING, logger="console.slack"):
        result = notifier.send({"text": "hello"})
    assert (result.ok, result.status, result.attempts) == (True, 200, 3)
    assert sleep.delays == [0.5, 1.0]
    assert server.bodies == [{"text": "hello"}] * 3
    assert len(caplog.records) == 2 and "HTTP 500" in caplog.text
    assert_secret_free(caplog.text)


def test_gives_up_after_the_retries_with_a_sentence(scripted):
    server = scripted(*[(503, "", {})] * 5)
    notifier = SlackNotifier(server.url, retries=2, backoff=0.01, sleep=Recorder())
    result = notifier.send({"text": "hello"})
    assert (result.ok, result.status, result.attempts) == (False, 503, 3)
    assert result.error == ("Slack answered HTTP 503 after 3 attempts; the message was not sent. "
                            "Check the network and Slack's status, then resend.")


def test_honours_retry_after_on_429(scripted):
    server = scripted((429, "rate_limited", {"Retry-After": "2"}))
    sleep = Recorder()
    result = SlackNotifier(server.url, backoff=0.01, sleep=sleep).send({"text": "hello"})
    assert result.ok and result.attempts == 2
    assert sleep.delays == [2.0]


def test_does_not_retry_what_slack_refuses(scripted):
    server = scripted((404, "no_service", {}))
    sleep = Recorder()
    result = SlackNotifier(server.url, sleep=sleep).send({"text": "hello"})
    assert (result.ok, result.status, result.attempts, sleep.delays) == (False, 404, 1, [])
    assert result.error.startswith("Slack answered HTTP 404 (no_service): it refused the message.")
    assert "then resend" in result.error


def test_a_hanging_server_times_out_and_is_retried(hanging):
    sleep = Recorder()
    notifier = SlackNotifier(hanging, timeout=0.2, retries=1, backoff=0.01, sleep=sleep)
    result = notifier.send({"text": "hello"})
    assert (result.ok, result.status, result.attempts) == (False, None, 2)
    assert result.error.startswith("Slack did not answer within 0.2 s after 2 attempts;")
    assert sleep.delays == [0.01]


def test_a_refused_connection_is_a_sentence_without_the_url(closed_port_url, caplog):
    notifier = SlackNotifier(closed_port_url, timeout=1.0, retries=1, backoff=0.01, sleep=Recorder())
    with caplog.at_level(logging.WARNING, logger="console.slack"):
        result = notifier.send({"text": "hello"})
    assert not result.ok and result.attempts == 2
    assert result.error.startswith("Slack could not be reached (Connection refused) after 2 attempts;")
    assert_secret_free(result.error, caplog.text, repr(notifier), str(notifier), repr(result))


def test_a_bad_url_is_reported_not_raised():
    result = SlackNotifier("hooks.slack.com/services/T0/B0/very-secret-token").send({"text": "x"})
    assert (result.ok, result.attempts) == (False, 0)
    assert "not an http(s) URL" in result.error
    assert_secret_free(result.error)


def test_repr_hides_the_webhook():
    notifier = SlackNotifier(f"https://hooks.slack.com/services/{TOKEN}")
    assert repr(notifier) == "SlackNotifier(webhook_url='[REDACTED]', timeout=5.0, retries=3)"


# --- outbox and timeline -------------------------------------------------------------------


def test_a_failed_message_stays_in_the_outbox_and_is_resent_later(tmp_path, hanging, drill):
    clock = FrozenClock(T0)
    with Store(tmp_path / "incidents.db") as store:
        incident_id = store.open_incident("order-service", T0)
        for new in (inc.rollback_started(PLAN), inc.rollback_completed()):
            clock.advance(120)
            store.append(incident_id, new.kind, new.text, clock.now(), data=new.data)
        state = inc.rebuild(incident_id, store.events(incident_id, newest_first=False))
        message = comms.rollback_complete(
            state, Metrics(error_rate=0.08, latency_p95_ms=2000), Metrics(error_rate=0.001, latency_p95_ms=250),
            Health(desired=3, ready=3, endpoint_ok=True), clock.now(), ticket="INC-2024-0117")

        down = SlackNotifier(hanging, timeout=0.1, retries=0, sleep=Recorder())
        entry, result = deliver(store, down, incident_id, message, clock, actor="alice")
        assert not result.ok and entry.pending and entry.attempts == 1
        assert [e.id for e in store.outbox_pending(incident_id)] == [entry.id]
        failed = store.events(incident_id)[0]
        assert failed.kind == inc.MESSAGE_FAILED and failed.actor == "alice"
        assert failed.text.startswith("Rollback Complete message not sent to Slack: Slack did not answer")
        state = inc.rebuild(incident_id, store.events(incident_id, newest_first=False))
        assert not cl.evaluate_checklist(state, clock.now()).item("team-notified").done

        clock.advance(60)
        up = SlackNotifier(f"{drill.url}/slack/webhook/{TOKEN}")
        ((resent, result),) = resend_pending(store, up, clock)
        assert result.ok and resent.id == entry.id and resent.sent_at == clock.now() and resent.attempts == 2
        assert store.outbox_pending() == []
        assert recorded(drill) == [comms.slack_payload(message)]
        sent = store.events(incident_id)[0]
        assert (sent.kind, sent.text) == (inc.MESSAGE_SENT, "Rollback Complete message sent to Slack")

        state = inc.rebuild(incident_id, store.events(incident_id, newest_first=False))
        item = cl.evaluate_checklist(state, clock.now()).item("team-notified")
        assert (item.done, item.why) == (True, "Rollback Complete message sent to Slack")
        everything = json.dumps([e.data for e in store.events(incident_id)]) + " ".join(
            e.text for e in store.events(incident_id))
        assert_secret_free(everything)


def test_resend_stops_at_the_first_failure(tmp_path, closed_port_url):
    clock = FrozenClock(T0)
    with Store(tmp_path / "incidents.db") as store:
        for n in range(3):
            store.outbox_add(None, "rolling_back", "Rolling back", {"text": f"message {n}"}, T0)
        notifier = SlackNotifier(closed_port_url, timeout=0.5, retries=0, sleep=Recorder())
        results = resend_pending(store, notifier, clock)
        assert len(results) == 1 and not results[0][1].ok
        assert [e.attempts for e in store.outbox_pending()] == [1, 0, 0]


class Held:
    """A webhook whose first post fails (500) and whose later posts wait until released."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                owner.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0")))))
                status = 500 if len(owner.bodies) == 1 else 200
                if status == 200:
                    owner.arrived.set()
                    owner.release.wait(30)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/services/{TOKEN}"


def test_two_resends_at_once_post_a_kept_message_once(tmp_path, monkeypatch):
    """The message screen's resend and the app's periodic one may run together:
    the second waits for the first, then finds nothing left to send."""
    from conftest_adapters import start_drill

    from console.config import load
    from console.drill import runner
    from console.session import Session

    webhook = Held()
    drill = start_drill()
    try:
        monkeypatch.setenv(runner.DRILL_SLACK_ENV, webhook.url)
        session = Session(load(drill.config_path), Store(tmp_path / "incidents.db"), clock=drill.world.clock)
        slack = session.config.slack.model_copy(update={"retries": 0})
        session.config = session.config.model_copy(update={"slack": slack})
        _, first = session.send_message("order-service", comms.MessageKind.ROLLBACK_IN_PROGRESS)
        assert not first.ok and len(session.pending_messages("order-service")) == 1
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(session.resend_pending("order-service")))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        assert webhook.arrived.wait(30), "the resend never reached the webhook"
        webhook.release.set()
        for thread in threads:
            thread.join(30)
        assert len(webhook.bodies) == 2  # the failed send and ONE resend
        assert sorted(len(r) for r in results) == [0, 1]
        assert session.pending_messages("order-service") == []
    finally:
        webhook.release.set()
        webhook.httpd.shutdown()
        drill.stop()
