"""The guided incident in the console, on drill scenarios with the real
Session, platform, Prometheus client and store, and an injected clock:

- `i` starts the 5-minute countdown; at expiry the console asks for a decision
  (with the signals in view); keep investigating / fix forward go in the
  timeline with their reasons;
- a worse signal (error rate past 5 %) interrupts the countdown at once;
- customer impact past 30 minutes shows Level 4 and records the escalation;
- facts change the decision;
- after a rollback: the Rollback Complete message reaches the drill's Slack
  sink, the checklist ticks what the console knows and says why, overdue
  items stand out, the export ticks "Logs preserved";
- a webhook that fails twice, then recovers: failures shown and kept, the
  message sent on retry.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import wait_for
import yaml

from console import incident
from console.clock import ScaledClock
from console.config import load
from console.drill import runner
from console.drill.scenario import load_scenario, parse_scenario
from console.drill.server import DrillServer
from console.drill.world import World
from console.model import Action
from console.session import Session
from console.store import Store
from console.ui.app import build_app
from console.comms import MessageKind
from console.ui.messages import RollbackFinished
from console.ui.panes.banner import DecisionBanner
from console.ui.panes.format import lasted
from console.ui.panes.incident import ChecklistPane, EscalationStrip, InvestigationCountdown
from console.ui.screens.confirm import ConfirmRollbackScreen
from console.ui.screens.decide import DecideScreen
from console.ui.screens.facts import FactsScreen
from console.ui.screens.message import MessageScreen

pytestmark = pytest.mark.integration

SIZE = (140, 45)
TIMEOUT = 60.0
SCENARIOS = Path(__file__).resolve().parents[2] / "console" / "drill" / "scenarios"


class Drill:
    """A drill world on an injected clock, served over HTTP, and a Session on it."""

    def __init__(self, scenario, tmp_path: Path, monkeypatch, speed: float = 0.0) -> None:
        self.clock = ScaledClock(scenario.start, speed)
        self.world = World(scenario, clock=self.clock)
        self.server = DrillServer(self.world).start()
        _, config_path = runner.write_configs(scenario, self.server.url, tmp_path / "drill")
        monkeypatch.setenv(runner.DRILL_SLACK_ENV, runner.slack_webhook_url(self.server.url))
        self.config = load(config_path).model_copy(update={"refresh_interval": 0.2})
        self.store = Store(tmp_path / "incidents.db")
        self.session = Session(self.config, self.store, clock=self.clock, operator="trainee@drill")

    def close(self) -> None:
        self.store.close()
        self.server.stop()

    def events(self, service: str) -> list:
        incident_id = self.store.open_incident_for(service)
        return self.store.events(incident_id, newest_first=False) if incident_id else []


@pytest.fixture
def drill(tmp_path, monkeypatch):
    made: list[Drill] = []

    def make(scenario, speed: float = 0.0) -> Drill:
        made.append(Drill(scenario, tmp_path, monkeypatch, speed))
        return made[-1]

    yield make
    for d in made:
        d.close()


def creep_then_jump() -> object:
    """error-creep (2.5 % errors: investigate), then 3.5.0 goes out at 30 s and fails 30 %."""
    data = yaml.safe_load((SCENARIOS / "error-creep.yaml").read_text())
    service = data["services"][0]
    service["versions"]["3.5.0"] = {"error_rate": 0.30, "latency_p95_ms": 400}
    service["ready_seconds"] = 5
    data["timeline"] = [{"at": "30s", "deploy": {"service": "cart-service", "version": "3.5.0",
                                                 "change_cause": "deploy 3.5.0"}}]
    return parse_scenario(data)


def action(app, service: str) -> Action | None:
    view = app.views.get(service)
    return view.decision.action if view else None


def strip_text(app) -> str:
    return str(app.query_one(EscalationStrip).render())


async def test_countdown_expiry_asks_for_a_decision_and_records_it(drill) -> None:
    d = drill(load_scenario("error-creep"))
    app = build_app(d.session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: action(app, "cart-service") == Action.INVESTIGATE, "INVESTIGATE FIRST")
        countdown = app.query_one(InvestigationCountdown)
        assert not countdown.display

        await pilot.press("i")
        await wait_for(pilot, lambda: countdown.display, "the countdown")
        started = d.session.facts("cart-service").investigation_started_at
        assert started == d.clock.now()
        assert str(countdown.query_one("#countdown-digits").value) == "5:00"
        # Stored before it is shown: the fact is in the timeline with the operator's name.
        fact = [e for e in d.events("cart-service") if e.kind == incident.FACT_SET][-1]
        assert "investigation started at" in fact.text and fact.actor == "trainee@drill"

        d.clock.advance(125)
        await wait_for(pilot, lambda: countdown.query_one("#countdown-digits").value == "2:55", "2:55 left")
        assert not isinstance(app.screen, DecideScreen)

        d.clock.advance(180)  # past the 5 minutes
        await wait_for(pilot, lambda: isinstance(app.screen, DecideScreen), "the decision at expiry")
        screen = app.screen
        assert screen.expired
        await wait_for(pilot, lambda: "Runbook now" in str(screen.query_one("#decide-signals").render()), "the signals")
        signals = str(screen.query_one("#decide-signals").render())
        assert "INVESTIGATE FIRST" in signals and "Error rate 1-5%" in signals

        # No reason: refused, the modal stays.
        await pilot.press("f3")
        await pilot.pause()
        assert isinstance(app.screen, DecideScreen)
        assert "Say why first" in str(app.screen.query_one("#decide-error").render())

        app.screen.query_one("Input").value = "lock contention found, fix in review"
        await pilot.press("f3")  # keep investigating: a fresh 5 minutes
        await wait_for(pilot, lambda: d.session.facts("cart-service").investigation_started_at == d.clock.now(),
                       "the countdown to restart")
        assert not isinstance(app.screen, DecideScreen)
        notes = [e for e in d.events("cart-service") if e.kind == incident.NOTE and "Decision:" in e.text]
        assert notes[-1].text == "Decision: Keep investigating (reason: lock contention found, fix in review)"
        assert dict(notes[-1].data)["choice"] == '"keep_investigating"'

        # Decide before the time is up: fix forward, with a reason; the countdown ends.
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DecideScreen), "the decide modal")
        assert not app.screen.expired
        app.screen.query_one("Input").value = "hotfix 3.4.1 is ready"
        await pilot.press("f4")
        await wait_for(pilot, lambda: d.session.investigation_deadline("cart-service") is None, "the countdown to end")
        await wait_for(pilot, lambda: not countdown.display, "the countdown to disappear")
        texts = [e.text for e in d.events("cart-service")]
        assert "Decision: Fix forward (reason: hotfix 3.4.1 is ready)" in texts


async def test_a_worse_signal_interrupts_the_countdown(drill) -> None:
    d = drill(creep_then_jump())
    app = build_app(d.session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: action(app, "cart-service") == Action.INVESTIGATE, "INVESTIGATE FIRST")
        await pilot.press("i")
        await wait_for(pilot, lambda: app.query_one(InvestigationCountdown).display, "the countdown")

        # 3.5.0 rolls out and fails 30 % of requests: well before the 5 minutes end.
        for _ in range(8):
            d.clock.advance(20)
            await pilot.pause(0.3)
        await wait_for(pilot, lambda: action(app, "cart-service") == Action.ROLLBACK_NOW, "ROLLBACK NOW")
        await wait_for(pilot, lambda: d.session.investigation_deadline("cart-service") is None,
                       "the countdown to be interrupted")
        assert d.clock.now() - d.session.incident_state("cart-service").opened_at < timedelta(minutes=5)
        await wait_for(pilot, lambda: not app.query_one(InvestigationCountdown).display, "the countdown to go")
        assert not isinstance(app.screen, DecideScreen)
        texts = [e.text for e in d.events("cart-service")]
        ended = [t for t in texts if t.startswith("Investigation ended: interrupted: ROLLBACK NOW")]
        assert ended and "Error rate > 5%" in ended[0]
        assert any("Investigation interrupted" in n.message for n in app._notifications)
        assert app.query_one(DecisionBanner).headline_text == "ROLLBACK NOW"


async def test_customer_impact_past_30_minutes_is_level_4(drill) -> None:
    d = drill(load_scenario("error-creep"))
    app = build_app(d.session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: action(app, "cart-service") == Action.INVESTIGATE, "INVESTIGATE FIRST")
        await wait_for(pilot, lambda: "Level 4 in 30:00" in strip_text(app), "the time to Level 4")
        assert "ESCALATION LEVEL 1" in strip_text(app) and "@trainee (on-call)" in strip_text(app)

        d.clock.advance(29 * 60)
        await wait_for(pilot, lambda: "Level 4 in 1:00" in strip_text(app), "one minute to Level 4")
        d.clock.advance(61)
        await wait_for(pilot, lambda: "ESCALATION LEVEL 4 · Management" in strip_text(app), "Level 4")
        assert "@drill-incident-manager" in strip_text(app)
        assert app.query_one(EscalationStrip).has_class("-sev-critical")
        await wait_for(pilot, lambda: any(e.kind == incident.ESCALATED for e in d.events("cart-service")),
                       "the escalation in the timeline")
        escalated = [e for e in d.events("cart-service") if e.kind == incident.ESCALATED]
        assert len(escalated) == 1 and "level 4" in escalated[0].text and escalated[0].actor == "console"


async def test_facts_change_the_decision(drill) -> None:
    d = drill(load_scenario("error-creep"))
    app = build_app(d.session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: action(app, "cart-service") == Action.INVESTIGATE, "INVESTIGATE FIRST")
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FactsScreen), "the facts screen")
        app.screen.query_one("#fact-migration_applied").value = True
        app.screen.query_one("#fact-customer_impact_since").value = "now"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: action(app, "cart-service") == Action.FIX_FORWARD, "FIX FORWARD")
        reasons = [str(r) for r in app.views["cart-service"].decision.reasons]
        assert any("rollback could cause data loss" in r for r in reasons)
        facts = d.session.facts("cart-service")
        assert facts.migration_applied and facts.customer_impact_since == d.clock.now()
        # A migration not known reversible is a data issue: Level 2.
        await wait_for(pilot, lambda: "ESCALATION LEVEL 2 · Team Lead" in strip_text(app), "Level 2")

        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FactsScreen), "the facts screen again")
        app.screen.query_one("#fact-data_corruption").value = True
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: action(app, "cart-service") == Action.ROLLBACK_NOW, "ROLLBACK NOW")
        assert app.query_one(DecisionBanner).headline_text == "ROLLBACK NOW + FREEZE WRITES"
        facts_in_timeline = [e.text for e in d.events("cart-service") if e.kind == incident.FACT_SET]
        assert "Fact: migration applied" in facts_in_timeline and "Fact: data corruption" in facts_in_timeline


async def test_after_the_rollback_message_checklist_and_export(drill, tmp_path) -> None:
    d = drill(load_scenario("bad-deploy"), speed=20.0)
    messages: list[object] = []
    app = build_app(d.session, animate=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await wait_for(pilot, lambda: action(app, "order-service") == Action.ROLLBACK_NOW, "ROLLBACK NOW")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan")
        await pilot.press("y")
        await wait_for(pilot, lambda: any(isinstance(m, RollbackFinished) for m in messages), "the rollback",
                       timeout=TIMEOUT * 2)
        assert next(m for m in messages if isinstance(m, RollbackFinished)).ok
        checklist = app.query_one(ChecklistPane)
        await wait_for(pilot, lambda: checklist.display and checklist.status is not None, "the checklist")
        await wait_for(pilot, lambda: checklist.status.item("service-health-verified").done, "health verified")
        health = checklist.status.item("service-health-verified")
        assert health.by_console and "3/3 pods ready" in health.why

        # The Rollback Complete message, previewed from live data and sent to the drill's sink.
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, MessageScreen), "the message screen")
        screen = app.screen
        assert screen.kind.label == "Rollback Complete"
        # Composed in a worker (it reads the store), then shown.
        await wait_for(pilot, lambda: bool(screen.text), "the composed message")
        text = screen.text
        # A drill's message says so, in the preview and as posted.
        assert text.startswith("## [DRILL] ✅ Rollback Complete")
        assert "**Service:** order-service" in text and "**Rolled back to:** 1.2.2" in text
        assert "(was 8%)" in text and "Do not re-deploy 1.2.3 without fix" in text
        screen.query_one("TextArea").text = text.replace("RCA scheduled for tomorrow", "RCA Thursday 10:00 UTC")
        await pilot.press("f2")
        await wait_for(pilot, lambda: bool(screen.results), "the send")
        assert screen.results[-1].ok, screen.results[-1].error
        posted = d.server.slack_messages[-1]["payload"]["text"]
        assert "*[DRILL] ✅ Rollback Complete*" in posted and "• RCA Thursday 10:00 UTC" in posted
        assert "*Rolled back to:* 1.2.2" in posted
        await pilot.press("escape")
        await wait_for(pilot, lambda: checklist.status.item("team-notified").done, "team notified")
        assert checklist.status.item("team-notified").why == "Rollback Complete message sent to Slack"
        assert "console: Rollback Complete message sent to Slack" in str(
            checklist.get_option("team-notified").prompt)

        # An operator's tick: Enter on the highlighted item.
        checklist.focus()
        checklist.highlighted = checklist.get_option_index("incident-ticket-created")
        await pilot.press("enter")
        await wait_for(pilot, lambda: checklist.status.item("incident-ticket-created").done, "the operator's tick")
        assert checklist.status.item("incident-ticket-created").by == "trainee@drill"

        # Past the Short-term group's hour: what is left undone there is overdue and stands out.
        assert not checklist.status.overdue
        d.clock.advance(61 * 60)
        await wait_for(pilot, lambda: bool(checklist.status.overdue), "an overdue item")
        overdue = {s.item.id for s in checklist.status.overdue}
        assert "stakeholders-notified" in overdue and "incident-ticket-created" not in overdue
        assert {s.item.group for s in checklist.status.overdue} <= {"Immediate", "Short-term"}
        assert checklist.has_class("-overdue") and "OVERDUE" in checklist.border_subtitle
        assert "OVERDUE" in str(checklist.get_option("stakeholders-notified").prompt)
        assert "OVERDUE" not in str(checklist.get_option("root-cause-identified").prompt)  # due in 24 hours

        # Export: Markdown and JSON in the state dir; "Logs preserved" ticks on it.
        await pilot.press("x")
        await wait_for(pilot, lambda: checklist.status.item("logs-preserved-for-investigation").done, "logs preserved")
        state = d.session.incident_state("order-service")
        exported = Path(state.exports[-1])
        assert exported.exists() and exported.with_suffix(".json").exists()
        data = json.loads(exported.with_suffix(".json").read_text())
        assert data["rollback"]["to_versions"] == ["1.2.2"] and data["metrics"]["before"]["error_rate"] > 0.05


class FlakyWebhook:
    """A Slack webhook that answers 500 to the first `failures` posts, then 200."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.posts.append(json.loads(body))
                status = 500 if len(outer.posts) <= outer.failures else 200
                payload = b"internal_error" if status == 500 else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/services/T000/B000/XXXX"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_after_the_rollback_the_header_says_how_long_the_impact_lasted(drill) -> None:
    """While the signals are bad the header runs the impact clock; once they are healthy
    after the rollback it says how long the impact lasted and when it ended, not "none seen"."""
    d = drill(load_scenario("bad-deploy"), speed=20.0)
    app = build_app(d.session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        header = app.query_one("#incident-header")
        await wait_for(pilot, lambda: action(app, "order-service") == Action.ROLLBACK_NOW, "ROLLBACK NOW")
        await wait_for(pilot, lambda: re.search(r"impact \d+:\d\d\b", str(header.render())), "the impact clock")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan")
        await pilot.press("y")
        await wait_for(pilot, lambda: "(ended " in str(header.render()), "the impact's end in the header",
                       timeout=TIMEOUT * 2)
        state = d.session.incident_state("order-service")
        decisions = state.decisions
        began = next(r.at for r in decisions if r.action not in (Action.HEALTHY, Action.SIGNALS_UNAVAILABLE))
        ended = next(r.at for r in decisions if r.action is Action.HEALTHY and r.at > began)
        text = str(header.render())
        assert f"impact {lasted(ended - began)} (ended {ended.astimezone(timezone.utc):%H:%M})" in text, text
        assert "none seen" not in text
        # The escalation clock has its own reset: no impact is counted towards level 4 any more.
        assert state.customer_impact_since is None


async def test_a_failing_webhook_keeps_the_message_and_the_retry_sends_it(drill, monkeypatch) -> None:
    webhook = FlakyWebhook(failures=2)
    try:
        d = drill(load_scenario("error-creep"))
        monkeypatch.setenv(runner.DRILL_SLACK_ENV, webhook.url)
        slack = d.config.slack.model_copy(update={"retries": 0})
        d.session.config = d.config.model_copy(update={"slack": slack})
        app = build_app(d.session, animate=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: action(app, "cart-service") == Action.INVESTIGATE, "INVESTIGATE FIRST")
            await pilot.press("m")
            await wait_for(pilot, lambda: isinstance(app.screen, MessageScreen), "the message screen")
            screen = app.screen
            # Investigating, nothing decided yet: m offers the periodic status update first.
            assert screen.kind.label == "Status Update"

            await pilot.press("f2")
            await wait_for(pilot, lambda: len(screen.results) == 1, "the first send")
            assert not screen.results[0].ok and "HTTP 500" in screen.results[0].error
            assert "not sent" in str(screen.query_one("#message-status").render())
            assert "kept; F5 resends" in str(screen.query_one("#message-outbox").render())
            assert len(d.session.pending_messages("cart-service")) == 1

            await pilot.press("f5")
            await wait_for(pilot, lambda: len(screen.results) == 2, "the first resend")
            assert not screen.results[1].ok
            await pilot.press("escape")
            await wait_for(pilot, lambda: "1 message not sent" in strip_text(app), "the unsent count on the strip")

            await pilot.press("m")
            await wait_for(pilot, lambda: isinstance(app.screen, MessageScreen), "the message screen again")
            screen = app.screen
            await pilot.press("f5")
            await wait_for(pilot, lambda: bool(screen.results), "the second resend")
            assert screen.results[-1].ok
            assert d.session.pending_messages("cart-service") == []
            assert len(webhook.posts) == 3
            assert webhook.posts[0] == webhook.posts[2]  # the same message, never lost or changed
            assert "*[DRILL] ℹ️ Status Update*" in webhook.posts[2]["text"]
            kinds = [e.kind for e in d.events("cart-service")]
            assert kinds.count(incident.MESSAGE_FAILED) == 2 and kinds.count(incident.MESSAGE_SENT) == 1
            # The webhook URL (the secret) is nowhere in the timeline.
            assert not any("XXXX" in e.text for e in d.events("cart-service"))
    finally:
        webhook.close()


def test_every_new_binding_has_an_id_and_a_description() -> None:
    for cls in (DecideScreen, FactsScreen, MessageScreen, ChecklistPane):
        for binding in cls.BINDINGS:
            assert binding.id, f"{cls.__name__}: {binding.key} has no id"
            assert binding.description, f"{cls.__name__}: {binding.key} has no description"


def test_impact_times_read_as_utc_and_never_in_the_future() -> None:
    from datetime import datetime, timezone

    from console.ui.screens.facts import parse_impact_time

    now = datetime(2024, 1, 17, 0, 30, tzinfo=timezone.utc)
    assert parse_impact_time("now", now) == now
    assert parse_impact_time("00:10", now) == datetime(2024, 1, 17, 0, 10, tzinfo=timezone.utc)
    assert parse_impact_time("23:50", now) == datetime(2024, 1, 16, 23, 50, tzinfo=timezone.utc)
    assert parse_impact_time("", now) is None
    with pytest.raises(ValueError, match="write HH:MM in UTC"):
        parse_impact_time("ten past", now)


async def test_confirm_with_a_posts_in_progress_and_the_banner_follows_the_rollback(drill) -> None:
    """`a` at the plan rolls back and posts Rollback in Progress (signed, one incident
    id); the banner says ROLLING BACK, then ROLLED BACK (watching), never ROLLBACK NOW."""
    d = drill(load_scenario("bad-deploy"), speed=5.0)  # a rollout of a few seconds: ROLLING BACK is seen
    messages: list[object] = []
    headlines: list[str] = []
    app = build_app(d.session, animate=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        banner = app.query_one(DecisionBanner)
        await wait_for(pilot, lambda: action(app, "order-service") == Action.ROLLBACK_NOW, "ROLLBACK NOW")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan")
        await pilot.press("a")
        await wait_for(pilot, lambda: banner.headline_text == "ROLLING BACK", "ROLLING BACK in the banner")
        headlines.append(banner.headline_text)

        def finished() -> bool:
            headlines.append(banner.headline_text)
            return any(isinstance(m, RollbackFinished) for m in messages)

        await wait_for(pilot, finished, "the rollback", timeout=TIMEOUT * 2)
        await wait_for(pilot, lambda: any("Rollback in Progress" in m["payload"]["text"]
                                          for m in d.server.slack_messages), "the in-progress message")
        posted = next(m["payload"]["text"] for m in d.server.slack_messages
                      if "Rollback in Progress" in m["payload"]["text"])
        assert "1.2.3 (revision 3) → 1.2.2" in posted or "1.2.3 → 1.2.2" in posted, posted
        assert "@trainee" in posted
        assert "ROLLING BACK" in headlines
        await wait_for(pilot, lambda: banner.headline_text in ("VERIFYING", "ROLLED BACK (watching)"),
                       "the watch after the rollback")
        after = headlines[headlines.index("ROLLING BACK"):] + [banner.headline_text]
        assert not any(h.startswith("ROLLBACK NOW") for h in after), after
        # One incident id: the Rollback Complete message names the store's own id.
        incident_id = d.store.open_incident_for("order-service")
        text = d.session.compose_message("order-service", MessageKind.ROLLBACK_COMPLETE).text
        assert f"Incident ticket: {incident_id}" in text
