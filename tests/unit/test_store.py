"""The incident store: a real SQLite file in a temp directory."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest

from console import incident as inc
from console.model import Action, Facts, Metrics, Snapshot
from console.decision import evaluate
from console.store import SCHEMA_VERSION, IncidentRecord, Store, StoreError

T0 = datetime(2024, 1, 17, 14, 45, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "state" / "incidents.db") as s:
        yield s


def test_creates_the_directory_and_uses_wal(tmp_path):
    path = tmp_path / "deep" / "state" / "incidents.db"
    with Store(path) as s:
        assert path.exists()
        assert s.journal_mode == "wal"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_open_incident_has_a_readable_unique_id_and_an_opening_event(store):
    first = store.open_incident("order-service", T0, "Error rate 8 %")
    second = store.open_incident("order-service", T0 + timedelta(seconds=20), "again")
    assert first == "INC-20240117-1445-order-service"
    assert second == "INC-20240117-1445-order-service-2"
    (opening,) = store.events(first)
    assert (opening.kind, opening.at, opening.text) == (
        inc.INCIDENT_OPENED,
        T0,
        "Incident opened for order-service: Error rate 8 %",
    )
    assert inc.payload(opening) == {"service": "order-service", "title": "Error rate 8 %"}


def test_incident_ids_are_made_safe_from_odd_service_names(store):
    incident_id = store.open_incident("Payments API/v2", T0)
    assert incident_id == "INC-20240117-1445-payments-api-v2"
    assert store.incident(incident_id).service == "Payments API/v2"


def test_open_incident_for_finds_the_latest_open_one(store):
    assert store.open_incident_for("order-service") is None
    old = store.open_incident("order-service", T0)
    new = store.open_incident("order-service", T0 + timedelta(hours=1))
    store.open_incident("cart-service", T0 + timedelta(hours=2))
    assert store.open_incident_for("order-service") == new
    store.close_incident(new, T0 + timedelta(hours=1, minutes=30))
    assert store.open_incident_for("order-service") == old
    store.close_incident(old, T0 + timedelta(hours=3))
    assert store.open_incident_for("order-service") is None


def test_close_incident_records_time_and_event_once(store):
    incident_id = store.open_incident("order-service", T0)
    store.close_incident(incident_id, T0 + timedelta(minutes=20))
    store.close_incident(incident_id, T0 + timedelta(minutes=40))  # already closed: no-op
    record = store.incident(incident_id)
    assert record == IncidentRecord(incident_id, "order-service", T0, T0 + timedelta(minutes=20), "")
    assert not record.open
    assert [e.kind for e in store.events(incident_id)] == [inc.INCIDENT_CLOSED, inc.INCIDENT_OPENED]


def test_close_unknown_incident_is_a_sentence(store):
    with pytest.raises(StoreError, match="There is no incident INC-nope"):
        store.close_incident("INC-nope", T0)


def test_append_returns_the_stored_event_and_orders_the_timeline(store):
    incident_id = store.open_incident("order-service", T0)
    event = store.append(incident_id, inc.NOTE, "first", T0 + timedelta(seconds=1), actor="@engineer")
    assert (event.kind, event.text, event.actor, event.at) == (inc.NOTE, "first", "@engineer", T0 + timedelta(seconds=1))
    for n in range(2, 6):
        store.append(incident_id, inc.NOTE, f"note {n}", T0 + timedelta(seconds=n))
    assert [e.text for e in store.events(incident_id, limit=2)] == ["note 5", "note 4"]
    oldest_first = store.events(incident_id, newest_first=False)
    assert [e.kind for e in oldest_first][0] == inc.INCIDENT_OPENED
    assert [e.text for e in oldest_first][1:] == ["first", "note 2", "note 3", "note 4", "note 5"]
    assert [e.text for e in store.events(incident_id, newest_first=False, limit=2)] == ["note 4", "note 5"]


def test_times_are_stored_as_utc(store):
    incident_id = store.open_incident("order-service", T0)
    cet = timezone(timedelta(hours=1))
    event = store.append(incident_id, inc.NOTE, "x", datetime(2024, 1, 17, 16, 0, tzinfo=cet))
    assert event.at == datetime(2024, 1, 17, 15, 0, tzinfo=timezone.utc)
    assert event.at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.append(incident_id, inc.NOTE, "naive", datetime(2024, 1, 17, 15, 0))
    assert len(store.events(incident_id)) == 2


def test_append_to_unknown_incident_is_refused(store):
    with pytest.raises(StoreError, match="no incident INC-ghost"):
        store.append("INC-ghost", inc.NOTE, "boo", T0)


def test_events_are_append_only(store, tmp_path):
    incident_id = store.open_incident("order-service", T0)
    db = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE events SET text = 'rewritten'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")
    db.close()
    assert len(store.events(incident_id)) == 1


def test_every_write_is_visible_to_another_connection_at_once(store):
    incident_id = store.open_incident("order-service", T0)
    store.append(incident_id, inc.NOTE, "committed", T0)
    with Store(store.path) as other:
        assert [e.text for e in other.events(incident_id, limit=1)] == ["committed"]


def test_incident_rebuilds_after_a_restart(tmp_path):
    path = tmp_path / "incidents.db"
    with Store(path) as s:
        incident_id = s.open_incident("order-service", T0, "bad deploy")
        decision = evaluate(Snapshot("order-service", T0, metrics=Metrics(error_rate=0.08)), Facts(), T0)
        for at, new in [
            (T0 + timedelta(seconds=5), inc.decided(decision)),
            (T0 + timedelta(seconds=10), inc.fact_set("customer_impact_since", T0)),
            (T0 + timedelta(seconds=20), inc.writes_frozen(3)),
        ]:
            s.append(incident_id, new.kind, new.text, at, data=new.data)
    with Store(path) as s:
        assert s.open_incident_for("order-service") == incident_id
        state = inc.rebuild(incident_id, s.events(incident_id, newest_first=False))
    assert state.service == "order-service" and state.title == "bad deploy"
    assert state.decision.action is Action.ROLLBACK_NOW
    assert state.facts.customer_impact_since == T0
    assert state.frozen_replicas == 3


def test_secrets_are_redacted_before_storing(store):
    incident_id = store.open_incident("order-service", T0, "token=abc123")
    event = store.append(
        incident_id,
        inc.NOTE,
        "posted to https://hooks.slack.com/services/T000/B000/XXXXSECRET with Bearer eyJhbGciOi",
        T0,
        data={"webhook_url": "https://example.org/hook", "nested": ["AKIAABCDEFGHIJKLMNOP"], "count": 3},
    )
    assert "XXXXSECRET" not in event.text and "eyJhbGciOi" not in event.text
    assert inc.payload(event) == {"webhook_url": "[REDACTED]", "nested": ["[REDACTED]"], "count": 3}
    raw = sqlite3.connect(store.path).execute("SELECT group_concat(text || data, '|') FROM events").fetchone()[0]
    raw += sqlite3.connect(store.path).execute("SELECT title FROM incidents").fetchone()[0]
    for secret in ("XXXXSECRET", "eyJhbGciOi", "AKIAABCDEFGHIJKLMNOP", "example.org/hook", "abc123"):
        assert secret not in raw


def test_concurrent_appends_from_threads(store):
    incident_id = store.open_incident("order-service", T0)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(25):
                store.append(incident_id, inc.NOTE, f"{n}-{i}", T0)
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.events(incident_id)) == 1 + 4 * 25


def test_incidents_and_latest(store):
    assert store.latest_incident() is None and store.incidents() == []
    a = store.open_incident("order-service", T0)
    b = store.open_incident("cart-service", T0 + timedelta(minutes=5))
    assert [r.id for r in store.incidents()] == [b, a]
    assert store.latest_incident().id == b


def test_not_a_database_is_a_sentence(tmp_path):
    path = tmp_path / "incidents.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="Cannot open the incident database .*incidents.db"):
        Store(path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "incidents.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer console"):
        Store(path)


def test_unwritable_directory_is_a_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="Cannot open the incident database"):
        Store(blocker / "incidents.db")


# --- the outbox -------------------------------------------------------------------------

PAYLOAD = {"text": "*✅ Rollback Complete*", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}


def test_outbox_keeps_a_message_until_it_is_sent(store):
    incident_id = store.open_incident("order-service", T0)
    entry = store.outbox_add(incident_id, "rollback_complete", "Rollback Complete", PAYLOAD, T0)
    assert (entry.incident_id, entry.channel, entry.payload, entry.attempts, entry.pending) == (
        incident_id, "Slack", PAYLOAD, 0, True)
    failed = store.outbox_mark_failed(entry.id, T0 + timedelta(seconds=5), "Slack did not answer within 5 s")
    assert (failed.attempts, failed.last_error, failed.pending) == (1, "Slack did not answer within 5 s", True)
    assert [e.id for e in store.outbox_pending()] == [entry.id]
    sent = store.outbox_mark_sent(entry.id, T0 + timedelta(minutes=1))
    assert (sent.attempts, sent.last_error, sent.sent_at, sent.pending) == (2, None, T0 + timedelta(minutes=1), False)
    assert store.outbox_pending() == []
    # A second "sent" keeps the first sending time.
    assert store.outbox_mark_sent(entry.id, T0 + timedelta(hours=1)).sent_at == T0 + timedelta(minutes=1)


def test_outbox_pending_is_oldest_first_and_per_incident(store):
    a = store.open_incident("order-service", T0)
    b = store.open_incident("cart-service", T0)
    first = store.outbox_add(a, "rolling_back", "Rolling back", {"text": "1"}, T0)
    second = store.outbox_add(b, "rolling_back", "Rolling back", {"text": "2"}, T0)
    third = store.outbox_add(None, "rolling_back", "Rolling back", {"text": "3"}, T0)
    assert [e.id for e in store.outbox_pending()] == [first.id, second.id, third.id]
    assert [e.id for e in store.outbox_pending(b)] == [second.id]


def test_outbox_survives_a_restart_and_redacts(tmp_path):
    path = tmp_path / "incidents.db"
    with Store(path) as s:
        entry = s.outbox_add(None, "rolling_back", "Rolling back",
                             {"text": "see https://hooks.slack.com/services/T0/B0/secret"}, T0)
    with Store(path) as s:
        (again,) = s.outbox_pending()
    assert again.id == entry.id
    assert again.payload == {"text": "see https://hooks.slack.com/[REDACTED]"}


def test_outbox_unknown_ids_are_sentences(store):
    with pytest.raises(StoreError, match="no message 42 in the outbox"):
        store.outbox_mark_sent(42, T0)
    with pytest.raises(StoreError, match="no incident INC-nope"):
        store.outbox_add("INC-nope", "rolling_back", "Rolling back", {"text": "x"}, T0)


def test_a_version_1_database_is_migrated(tmp_path):
    from console import store as store_module

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(store_module._SCHEMA_V1)
    db.execute("INSERT INTO incidents (id, service, opened_at) VALUES ('INC-1', 'order-service', ?)", (T0.isoformat(),))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Store(path) as s:
        assert s.incident("INC-1").service == "order-service"
        assert s.outbox_add("INC-1", "rolling_back", "Rolling back", {"text": "x"}, T0).id == 1
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    db.close()


def test_open_incidents_answers_open_incident_for_every_service_in_one_read(store):
    store.open_incident("order-service", T0, "first")
    latest = store.open_incident("order-service", T0 + timedelta(minutes=1), "second")
    closed = store.open_incident("payment-service", T0, "closed")
    store.close_incident(closed, T0 + timedelta(minutes=2))
    store.open_incident("not-watched", T0, "elsewhere")
    services = ("order-service", "payment-service", "cart-service")
    assert store.open_incidents(services) == {s: i for s in services if (i := store.open_incident_for(s))}
    assert store.open_incidents(services) == {"order-service": latest}


def test_the_version_changes_with_a_write_here_or_by_another_process(store, tmp_path):
    before = store.version()
    assert store.version() == before  # reading changes nothing
    incident_id = store.open_incident("order-service", T0, "here")
    mine = store.version()
    assert mine != before
    # Another console (its own connection, as another process has) writes to the same file.
    with Store(store.path) as other:
        other.append(incident_id, "note", "from another console", T0 + timedelta(seconds=5), "other")
    assert store.version() != mine
