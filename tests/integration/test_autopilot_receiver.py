"""The autopilot's HTTP receiver against a served drill world: its answers
(401, 411, 413, 400, 200, /healthz, /metrics), and bad payloads
(property-based) that get a 4xx and never a traceback nor a rollback."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import wait_until

from console.autopilot.journal import Journal
from console.autopilot.pilot import Autopilot
from console.autopilot.receiver import Receiver
from console.config import parse as parse_config
from console.drill import runner
from console.drill.scenario import load_scenario
from console.session import Session
from console.store import Store

TOKEN = "s3cret-token-for-the-test"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    directory = tmp_path_factory.mktemp("receiver")
    # The world on the wall clock, as the autopilot reads it (the scenario's own start would look years stale).
    running = runner.start(load_scenario("bad-deploy"), directory=directory / "drill",
                           start_at=datetime.now(timezone.utc).replace(microsecond=0))
    data = runner.console_config(running.world.scenario, running.server.url, running.kubeconfig_path)
    data["autopilot"] = {"token_env": "TEST_AUTOPILOT_TOKEN", "max_body_bytes": 4096}
    config = parse_config(data)
    session = Session(config, Store(directory / "incidents.db"), operator="autopilot")
    journal = Journal(directory / "incidents.db")
    pilot = Autopilot(config, session, journal, out=lambda line: None)
    server = Receiver(("127.0.0.1", 0), pilot, TOKEN, config.autopilot.max_body_bytes)
    server.serve_in_thread()
    pilot.start()
    try:
        yield server, running
    finally:
        server.close()
        pilot.stop()
        session.close()
        journal.close()
        running.stop()


def post(server, body: bytes, token: str | None = TOKEN, **headers) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{server.url}/alertmanager", content=body, headers=headers, timeout=5)


GOOD_ALERT = {"status": "firing", "labels": {"alertname": "Other", "service": "order-service"},
              "annotations": {}, "startsAt": "2026-12-04T02:58:01Z", "endsAt": "0001-01-01T00:00:00Z",
              "fingerprint": "abc"}


def test_health_and_metrics(receiver):
    server, _ = receiver
    assert httpx.get(f"{server.url}/healthz", timeout=5).text == "ok\n"
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert "rollback_console_autopilot_alerts_received_total" in text
    assert 'rollback_console_autopilot_rollbacks_refused_total{reason="migration"} 0' in text
    assert "rollback_console_autopilot_leader 1" in text


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", TOKEN[:-1]])
def test_a_missing_or_wrong_token_is_401(receiver, token):
    server, _ = receiver
    answer = post(server, json.dumps({"version": "4"}).encode(), token=token)
    assert answer.status_code == 401
    assert answer.json()["error"].startswith("Missing or wrong bearer token")
    assert TOKEN not in answer.text


def test_an_oversized_body_is_413_and_a_bad_one_400(receiver):
    server, _ = receiver
    answer = post(server, b"x" * 5000)
    assert answer.status_code == 413 and "autopilot.max_body_bytes" in answer.json()["error"]
    answer = post(server, b'{"version": "4", "status": "firing", "alerts": 7}')
    assert answer.status_code == 400 and answer.json() == {"error": "alerts must be a non-empty list."}


def test_an_alert_without_the_label_is_ignored(receiver):
    server, running = receiver
    body = json.dumps({"version": "4", "status": "firing", "alerts": [GOOD_ALERT]}).encode()
    answer = post(server, body)
    assert answer.status_code == 200 and answer.json()["ignored"] == 1 and answer.json()["queued"] == 0


bad_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                 max_leaves=10).map(lambda v: json.dumps({"version": "4", "status": "firing", "alerts": [v]}).encode()),
    st.sampled_from(["status", "labels", "startsAt", "fingerprint"]).flatmap(
        lambda key: st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2)).map(
            lambda value: json.dumps({"version": "4", "status": "firing",
                                      "alerts": [{**GOOD_ALERT, "labels": {**GOOD_ALERT["labels"], "auto_rollback": "true"},
                                                  key: value}]}).encode())),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bad_bodies)
def test_bad_payloads_get_4xx_never_a_traceback_nor_a_rollback(receiver, capfd, body):
    server, running = receiver
    answer = post(server, body)
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()) == {"error"} and answer.json()["error"].endswith(".")
    assert "Traceback" not in capfd.readouterr().err
    assert server.pilot.counters.value("rollbacks_started") == 0
    requests = httpx.get(f"{running.server.url}/drill/requests", timeout=5).json()["requests"]
    assert not [r for r in requests if r[0] == "PATCH"]


def test_paused_from_the_store_records_announces_and_rolls_nothing_back(receiver):
    from console.autopilot.switch import toggle_pause

    server, running = receiver
    session = server.pilot.session
    assert toggle_pause(session).switch.paused
    alert = {**GOOD_ALERT, "labels": {"alertname": "AutoRollbackTrigger", "service": "order-service",
                                      "auto_rollback": "true"}, "fingerprint": "paused1"}
    answer = post(server, json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode())
    assert answer.status_code == 200 and answer.json()["queued"] == 1
    texts = _wait_for_message(running, "Autopilot did not roll back")
    assert texts and f"paused by {session.operator}" in texts[0] and "Level 1" in texts[0], texts
    assert server.pilot.counters.value("rollbacks_started") == 0
    assert not [r for r in httpx.get(f"{running.server.url}/drill/requests", timeout=5).json()["requests"]
                if r[0] == "PATCH"]
    assert not toggle_pause(session).switch.paused


def test_the_console_pauses_an_autopilot_with_a_store_of_its_own_through_the_cluster(receiver, tmp_path):
    """The README's autopilot runs in a pod with a store of its own: the console's
    `A` reaches it through the Lease in the service's namespace, which the real
    kubectl sees and can delete (resuming it), and the store's switch alone would not."""
    from console.autopilot.switch import PAUSE_LEASE, toggle_pause
    from support import kubectl

    server, running = receiver
    console = Session(server.pilot.config, Store(tmp_path / "console.db"), operator="alice@laptop")
    try:
        toggled = toggle_pause(console)
        assert toggled.switch.paused and toggled.written == (f"shop/{PAUSE_LEASE}",) and not toggled.problems
        lease = json.loads(kubectl(running.kubeconfig_path, tmp_path / "kube-cache", "shop",
                                   "get", "lease", PAUSE_LEASE, "-o", "json"))
        assert lease["spec"]["holderIdentity"] == "alice@laptop"
        reason = server.pilot.paused("order-service")
        assert reason is not None and reason.startswith("paused by alice@laptop at ")
        assert f"Lease shop/{PAUSE_LEASE}" in reason

        alert = {**GOOD_ALERT, "labels": {"alertname": "AutoRollbackTrigger", "service": "order-service",
                                          "auto_rollback": "true"}, "fingerprint": "paused-in-cluster"}
        answer = post(server, json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode())
        assert answer.status_code == 200 and answer.json()["queued"] == 1
        texts = _wait_for_message(running, "paused by alice@laptop")
        assert texts and "Autopilot did not roll back order-service" in texts[0], texts
        assert server.pilot.counters.value("rollbacks_started") == 0
        assert not [r for r in httpx.get(f"{running.server.url}/drill/requests", timeout=5).json()["requests"]
                    if r[0] == "PATCH"]

        # An engineer with only kubectl resumes it.
        kubectl(running.kubeconfig_path, tmp_path / "kube-cache", "shop", "delete", "lease", PAUSE_LEASE)
        assert server.pilot.paused("order-service") is None
        # The console's store still says paused: the next `A` resumes both, and says so.
        toggled = toggle_pause(console)
        assert not toggled.switch.paused and not toggled.problems
    finally:
        console.close()


def test_a_kill_switch_that_cannot_be_read_stops_the_autopilot(receiver, tmp_path):
    """Fail safe: a namespace whose Lease the autopilot cannot read counts as paused."""
    from console.autopilot.switch import cluster_pause

    server, running = receiver
    data = runner.console_config(running.world.scenario, "http://127.0.0.1:9", running.kubeconfig_path)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(running.kubeconfig_path.read_text().replace(running.server.url, "http://127.0.0.1:9"))
    data["clusters"] = {"closed": {"kubeconfig": str(kubeconfig), "timeout": 2}}
    data["services"] = [{**data["services"][0], "cluster": "closed"}]
    session = Session(parse_config(data), Store(tmp_path / "closed.db"), operator="autopilot")
    try:
        reason = cluster_pause(session, "order-service")
    finally:
        session.close()
    assert reason is not None and "could not be read" in reason and "does not act on a switch it cannot see" in reason


def test_shadow_records_and_posts_what_it_would_do_and_changes_nothing(receiver):
    server, running = receiver
    live = server.pilot
    shadow = Autopilot(live.config, live.session, live.journal, shadow=True, out=lambda line: None)
    shadow.start()
    try:
        alert = {**GOOD_ALERT, "labels": {"alertname": "AutoRollbackTrigger", "service": "order-service",
                                          "auto_rollback": "true"}, "fingerprint": "shadow1"}
        from console.autopilot.payload import parse

        accepted = shadow.accept(parse(json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()))
        assert accepted.queued == 1
        texts = _wait_for_message(running, "(shadow) would roll back")
    finally:
        shadow.stop()
    assert texts and "order-service from 1.2.3 to 1.2.2" in texts[0] and "Nothing was changed." in texts[0]
    assert not [r for r in httpx.get(f"{running.server.url}/drill/requests", timeout=5).json()["requests"]
                if r[0] == "PATCH"]
    assert shadow.counters.value("rollbacks_started") == 0
    assert not any(e.kind == "rollback.started" for e in live.session.events("order-service"))


def _wait_for_message(running, words: str) -> list[str]:
    def texts() -> list[str]:
        body = httpx.get(f"{running.server.url}/slack/messages", timeout=5).json()
        return [m["payload"]["text"] for m in body["messages"] if words in m["payload"]["text"]]

    return wait_until(texts, f"a Slack message saying {words!r}", timeout=60)


def test_a_replica_with_another_store_reads_the_cooldown_from_the_cluster(receiver, tmp_path):
    """Last in the module: it rolls order-service back for real."""
    server, running = receiver
    alert = {**GOOD_ALERT, "labels": {"alertname": "AutoRollbackTrigger", "service": "order-service",
                                      "auto_rollback": "true"}, "fingerprint": "real1",
             "startsAt": datetime.now(timezone.utc).isoformat()}
    answer = post(server, json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode())
    assert answer.status_code == 200 and answer.json()["queued"] == 1
    assert _wait_for_message(running, "Rollback Complete")

    # A second autopilot with a store of its own: its journal knows nothing of that rollback.
    live = server.pilot
    other_session = Session(live.config, Store(tmp_path / "other.db"), operator="autopilot")
    other_journal = Journal(tmp_path / "other.db")
    other = Autopilot(live.config, other_session, other_journal, out=lambda line: None)
    other.start()
    try:
        later = {**alert, "fingerprint": "real2", "startsAt": datetime.now(timezone.utc).isoformat()}
        from console.autopilot.payload import parse

        assert other.accept(parse(json.dumps({"version": "4", "status": "firing", "alerts": [later]}).encode())).queued == 1
        texts = _wait_for_message(running, "was rolled back automatically at")
    finally:
        other.stop()
        other_session.close()
        other_journal.close()
    assert texts and "Escalating to Level 2" in texts[0], texts
    assert len([r for r in httpx.get(f"{running.server.url}/drill/requests", timeout=5).json()["requests"]
                if r[0] == "PATCH" and r[1].endswith("/deployments/order-service")]) == 1


def test_a_rollback_recorded_but_never_sent_is_asked_for_again_not_counted(tmp_path):
    """What a kill between recording the rollback and sending it leaves behind:
    the alert claimed, the rollback journalled and recorded as started, nothing
    on the platform. The resumed autopilot ends it as failed, withdraws it from
    the cooldown (it rolled nothing back), and asks the rules and the gate again:
    one PATCH, and no later alert is told the service "was rolled back"."""
    from console import incident

    running = runner.start(load_scenario("bad-deploy"), directory=tmp_path / "drill",
                           start_at=datetime.now(timezone.utc).replace(microsecond=0))
    data = runner.console_config(running.world.scenario, running.server.url, running.kubeconfig_path)
    data["autopilot"] = {"token_env": "TEST_AUTOPILOT_TOKEN"}
    config = parse_config(data)
    session = Session(config, Store(tmp_path / "incidents.db"), operator="autopilot")
    journal = Journal(tmp_path / "incidents.db")
    lines: list[str] = []
    pilot = Autopilot(config, session, journal, out=lines.append)
    try:
        session.run(session.refresh(only="order-service"))
        plan = session.plan_rollback("order-service")
        starts_at = datetime.now(timezone.utc).isoformat()
        now = session.clock.now()
        assert journal.claim("killed1", starts_at, "AutoRollbackTrigger", "order-service", now)
        journal.rolled_back("order-service", "killed1", starts_at, now)
        session.record(incident.rollback_started(plan, reason="autopilot: AutoRollbackTrigger"),
                       service="order-service")
        assert session.rollback_in_flight("order-service")

        pilot.start()
        pilot.resume()
        wait_until(lambda: journal.outcome("killed1", starts_at), "the resumed alert to finish", timeout=90)
        assert journal.outcome("killed1", starts_at) == "rolled back", lines
        patches = [r for r in httpx.get(f"{running.server.url}/drill/requests", timeout=5).json()["requests"]
                   if r[0] == "PATCH" and r[1].endswith("/deployments/order-service")]
        assert len(patches) == 1
        kinds = [e.kind for e in session.events("order-service")]
        assert [k for k in kinds if k.startswith("rollback.") and k != incident.ROLLBACK_PROGRESS] == [
            incident.ROLLBACK_STARTED, incident.ROLLBACK_FAILED, incident.ROLLBACK_STARTED,
            incident.ROLLBACK_COMPLETED]
        texts = [e.text for e in session.events("order-service")]
        assert any("stopped before the rollback reached the platform" in t for t in texts), texts
        # One rollback counts for the cooldown: the one that reached the platform.
        assert len(journal.past_rollbacks()) == 1
        assert pilot.counters.value("rollbacks_started") == 1
    finally:
        pilot.stop()
        session.close()
        journal.close()
        running.stop()
