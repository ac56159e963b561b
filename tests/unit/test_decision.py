"""The decision framework, row by row and rule by rule, against the runbook."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.decision import (
    FIX_FORWARD_ALTERNATIVES,
    ROWS,
    Thresholds,
    evaluate,
    percent,
    urgency,
)
from console.model import Action, Facts, Health, Metrics, Missing, Reason, Signals, Snapshot, Table

NOW = datetime(2024, 1, 17, 14, 45, tzinfo=timezone.utc)


def snap(
    error_rate: float | None = 0.001,
    *,
    latency: float | None = 250.0,
    latency_before: float | None = 250.0,
    health: Health | None = None,
    signals: Signals | None = None,
    routes: tuple[tuple[str, float], ...] = (),
    stale: bool = False,
) -> Snapshot:
    return Snapshot(
        service="order-service",
        taken_at=NOW,
        metrics=Metrics(
            error_rate=error_rate,
            latency_p95_ms=latency,
            latency_p95_before_ms=latency_before,
            route_error_rates=routes,
        ),
        health=health or Health(desired=3, ready=3, endpoint_ok=True, endpoint_status="healthy"),
        signals=signals or Signals(),
        stale=stale,
    )


def conditions(decision) -> list[str]:
    return [r.condition for r in decision.reasons]


# --- the tables, row by row -------------------------------------------------


def test_rows_are_the_runbooks_three_tables_in_order():
    assert [(r.table, r.condition, r.action) for r in ROWS] == [
        (Table.ROLLBACK_IMMEDIATELY, "Service completely down", "Rollback now"),
        (Table.ROLLBACK_IMMEDIATELY, "Error rate > 5%", "Rollback now"),
        (Table.ROLLBACK_IMMEDIATELY, "Data corruption detected", "Rollback now + freeze writes"),
        (Table.ROLLBACK_IMMEDIATELY, "Security vulnerability active", "Rollback now"),
        (Table.INVESTIGATE_FIRST, "Error rate 1-5%", "Investigate 5 min, then decide"),
        (Table.INVESTIGATE_FIRST, "Latency spike", "Investigate 5 min, then decide"),
        (Table.INVESTIGATE_FIRST, "Single endpoint failing", "Investigate, may not need full rollback"),
        (Table.INVESTIGATE_FIRST, "Intermittent errors", "Investigate, may be transient"),
        (Table.DO_NOT_ROLLBACK, "Database migration applied", "Fix forward (rollback could cause data loss)"),
        (Table.DO_NOT_ROLLBACK, "Minor bug, workaround exists", "Hotfix"),
        (Table.DO_NOT_ROLLBACK, "External service issue", "Wait for external fix"),
    ]


def test_healthy_service_is_healthy():
    d = evaluate(snap(), Facts(), NOW)
    assert d.action is Action.HEALTHY
    assert d.reasons == () and d.deadline is None and not d.freeze_writes


def test_service_down_no_pods_ready():
    d = evaluate(snap(None, health=Health(desired=3, ready=0)), Facts(), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert d.reasons == (Reason(Table.ROLLBACK_IMMEDIATELY, "Service completely down", "0 of 3 pods ready"),)


def test_service_down_health_endpoint_failing():
    d = evaluate(snap(None, health=Health(endpoint_ok=False, endpoint_status="HTTP 503")), Facts(), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert str(d.reasons[0]) == "Service completely down: health endpoint: HTTP 503"


def test_error_rate_above_five_percent_rolls_back_with_the_value():
    d = evaluate(snap(0.08), Facts(), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert d.reasons == (Reason(Table.ROLLBACK_IMMEDIATELY, "Error rate > 5%", "8.0 %"),)
    assert d.headline == "ROLLBACK NOW"


def test_data_corruption_rolls_back_and_freezes_writes():
    d = evaluate(snap(), Facts(data_corruption=True), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert d.freeze_writes
    assert conditions(d) == ["Data corruption detected"]
    assert any("backup" in a for a in d.alternatives)


def test_security_vulnerability_rolls_back():
    d = evaluate(snap(), Facts(security_vulnerability=True), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert not d.freeze_writes
    assert conditions(d) == ["Security vulnerability active"]
    assert d.alternatives == ()


def test_error_rate_between_one_and_five_percent_investigates_with_deadline():
    d = evaluate(snap(0.03), Facts(), NOW)
    assert d.action is Action.INVESTIGATE
    assert d.reasons == (Reason(Table.INVESTIGATE_FIRST, "Error rate 1-5%", "3.0 %"),)
    assert d.deadline == NOW + timedelta(minutes=5)


def test_deadline_counts_from_the_investigation_start():
    started = NOW - timedelta(minutes=2)
    d = evaluate(snap(0.03), Facts(investigation_started_at=started), NOW)
    assert d.deadline == started + timedelta(minutes=5)


def test_investigate_window_comes_from_thresholds():
    d = evaluate(snap(0.03), Facts(), NOW, Thresholds(investigate_window=timedelta(minutes=10)))
    assert d.deadline == NOW + timedelta(minutes=10)


def test_latency_spike_from_metrics_uses_the_factor():
    d = evaluate(snap(latency=2000.0, latency_before=250.0), Facts(), NOW)
    assert d.action is Action.INVESTIGATE
    assert d.reasons == (
        Reason(Table.INVESTIGATE_FIRST, "Latency spike", "p95 2000 ms, 8.0x the 250 ms before the deploy"),
    )
    # Below the factor: no spike; at it: a spike.
    assert evaluate(snap(latency=499.0, latency_before=250.0), Facts(), NOW).action is Action.HEALTHY
    assert evaluate(snap(latency=500.0, latency_before=250.0), Facts(), NOW).action is Action.INVESTIGATE
    assert (
        evaluate(snap(latency=2000.0, latency_before=250.0), Facts(), NOW, Thresholds(latency_spike_factor=10.0)).action
        is Action.HEALTHY
    )


def test_latency_spike_from_signals():
    d = evaluate(snap(latency=None, signals=Signals(latency_spike=True, latency_factor=3.0)), Facts(), NOW)
    assert d.action is Action.INVESTIGATE
    assert str(d.reasons[0]) == "Latency spike: p95 3.0x the latency before the deploy"


def test_single_endpoint_failing_names_the_route():
    s = snap(signals=Signals(single_endpoint="/orders"), routes=(("/orders", 0.4),))
    d = evaluate(s, Facts(), NOW)
    assert d.action is Action.INVESTIGATE
    assert d.reasons == (Reason(Table.INVESTIGATE_FIRST, "Single endpoint failing", "/orders (40.0 % errors)"),)


def test_intermittent_errors():
    d = evaluate(snap(signals=Signals(intermittent=True, crossings=4)), Facts(), NOW)
    assert d.action is Action.INVESTIGATE
    assert str(d.reasons[0]) == "Intermittent errors: error rate crossed the threshold 4 times"


def test_irreversible_migration_fixes_forward():
    d = evaluate(snap(), Facts(migration_applied=True, migration_reversible=False, migration_name="0042_drop_col"), NOW)
    assert d.action is Action.FIX_FORWARD
    assert d.alternatives == FIX_FORWARD_ALTERNATIVES
    assert d.reasons == (
        Reason(Table.DO_NOT_ROLLBACK, "Database migration applied", "0042_drop_col: not reversible; rollback could cause data loss"),
    )


def test_minor_bug_with_workaround_hotfixes():
    d = evaluate(snap(), Facts(minor_bug_workaround=True), NOW)
    assert d.action is Action.HOTFIX
    assert conditions(d) == ["Minor bug, workaround exists"]


def test_external_service_issue_waits():
    d = evaluate(snap(), Facts(external_service_issue=True), NOW)
    assert d.action is Action.WAIT_EXTERNAL
    assert conditions(d) == ["External service issue"]


# --- boundaries -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "action", "condition"),
    [
        (0.00999, Action.HEALTHY, None),
        (0.01, Action.INVESTIGATE, "Error rate 1-5%"),
        (0.05, Action.INVESTIGATE, "Error rate 1-5%"),
        (0.050001, Action.ROLLBACK_NOW, "Error rate > 5%"),
    ],
)
def test_error_rate_boundaries(rate, action, condition):
    d = evaluate(snap(rate), Facts(), NOW)
    assert d.action is action
    assert conditions(d) == ([condition] if condition else [])


def test_threshold_overrides_move_the_boundaries():
    t = Thresholds(rollback_error_rate=0.10, investigate_error_rate=0.02)
    assert evaluate(snap(0.08), Facts(), NOW, t).action is Action.INVESTIGATE
    assert evaluate(snap(0.015), Facts(), NOW, t).action is Action.HEALTHY
    assert evaluate(snap(0.11), Facts(), NOW, t).action is Action.ROLLBACK_NOW


def test_percent_keeps_the_digits_that_matter():
    assert percent(0.08) == "8.0 %"
    assert percent(0.050001) == "5.0001 %"
    assert percent(0.0603333333) == "6.03 %"  # rounded for reading, still not "6.0 %"
    assert percent(0.00999) == "0.999 %"
    assert percent(0.0) == "0.0 %"


def test_inconsistent_thresholds_are_refused_with_a_sentence():
    with pytest.raises(ValueError, match="investigate_error_rate"):
        Thresholds(rollback_error_rate=0.01, investigate_error_rate=0.05)
    with pytest.raises(ValueError, match="investigate_window"):
        Thresholds(investigate_window=timedelta(0))


def test_missing_metrics_fire_nothing():
    d = evaluate(snap(None, latency=None, latency_before=None), Facts(), NOW)
    assert d.action is Action.HEALTHY
    assert d.reasons == ()


# --- precedence (the module docstring's list) -----------------------------------------


IRREVERSIBLE = dict(migration_applied=True, migration_reversible=False)


def test_1_data_corruption_beats_an_irreversible_migration_and_external_issue():
    d = evaluate(snap(0.08), Facts(data_corruption=True, external_service_issue=True, **IRREVERSIBLE), NOW)
    assert d.action is Action.ROLLBACK_NOW and d.freeze_writes
    assert conditions(d)[0] == "Data corruption detected"
    assert set(conditions(d)) == {
        "Data corruption detected",
        "Error rate > 5%",
        "Database migration applied",
        "External service issue",
    }


def test_2_security_beats_an_irreversible_migration_with_a_partial_rollback():
    d = evaluate(snap(), Facts(security_vulnerability=True, **IRREVERSIBLE), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert not d.freeze_writes
    assert conditions(d) == ["Security vulnerability active", "Database migration applied"]
    assert any("Partial rollback to a version that works with the new schema" in a for a in d.alternatives)


def test_2_security_beats_external_issue():
    d = evaluate(snap(), Facts(security_vulnerability=True, external_service_issue=True), NOW)
    assert d.action is Action.ROLLBACK_NOW


@pytest.mark.parametrize("reversible", [False, None])
def test_3_migration_not_known_reversible_fixes_forward_at_eight_percent(reversible):
    d = evaluate(snap(0.08), Facts(migration_applied=True, migration_reversible=reversible), NOW)
    assert d.action is Action.FIX_FORWARD
    assert conditions(d) == ["Database migration applied", "Error rate > 5%"]
    assert "rollback could cause data loss" in d.reasons[0].detail


def test_3_migration_blocks_rollback_when_service_down():
    d = evaluate(snap(None, health=Health(desired=3, ready=0)), Facts(**IRREVERSIBLE), NOW)
    assert d.action is Action.FIX_FORWARD
    assert "Service completely down" in conditions(d)


def test_3_reversible_migration_does_not_block():
    d = evaluate(snap(0.08), Facts(migration_applied=True, migration_reversible=True), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert conditions(d) == ["Error rate > 5%", "Database migration applied"]
    assert d.reasons[1].detail == "reversible; roll back the application first, then the migration"


def test_4_external_issue_waits_even_at_eight_percent_and_keeps_signal_reasons():
    d = evaluate(snap(0.08, health=Health(desired=3, ready=0)), Facts(external_service_issue=True), NOW)
    assert d.action is Action.WAIT_EXTERNAL
    assert conditions(d) == ["External service issue", "Service completely down", "Error rate > 5%"]
    assert d.alternatives and "external service" in d.alternatives[0]


def test_4_irreversible_migration_beats_external_issue():
    d = evaluate(snap(0.08), Facts(external_service_issue=True, **IRREVERSIBLE), NOW)
    assert d.action is Action.FIX_FORWARD


def test_5_minor_bug_does_not_override_error_rate_above_five_percent():
    d = evaluate(snap(0.08), Facts(minor_bug_workaround=True), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert conditions(d) == ["Error rate > 5%", "Minor bug, workaround exists"]
    assert any("Hotfix" in a for a in d.alternatives)


def test_5_rollback_rows_beat_investigate_rows():
    d = evaluate(snap(0.08, latency=2000.0, signals=Signals(intermittent=True)), Facts(), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert d.deadline is None
    assert conditions(d) == ["Error rate > 5%", "Latency spike", "Intermittent errors"]


def test_6_investigate_beats_minor_bug():
    d = evaluate(snap(0.03), Facts(minor_bug_workaround=True), NOW)
    assert d.action is Action.INVESTIGATE
    assert conditions(d) == ["Error rate 1-5%", "Minor bug, workaround exists"]


def test_8_reversible_migration_alone_is_healthy_but_reported():
    d = evaluate(snap(), Facts(migration_applied=True, migration_reversible=True), NOW)
    assert d.action is Action.HEALTHY
    assert conditions(d) == ["Database migration applied"]


# --- stale data ------------------------------------------------------------------


def test_a_stale_error_rate_above_5_percent_is_signals_unavailable_not_a_rollback():
    d = evaluate(snap(0.08, stale=True), Facts(), NOW)
    assert d.action is Action.SIGNALS_UNAVAILABLE
    assert d.headline == "SIGNALS UNAVAILABLE"
    assert d.stale
    # The last known value still shows, after what is missing.
    assert conditions(d) == ["Signals unavailable", "Error rate > 5%"]


def test_stale_metrics_are_never_healthy():
    d = evaluate(snap(0.001, stale=True), Facts(), NOW)
    assert d.action is Action.SIGNALS_UNAVAILABLE
    assert d.unavailable and d.unavailable[0].signal == "metrics"


def test_a_missing_error_rate_says_what_is_missing_and_since_when():
    since = NOW - timedelta(minutes=3)
    missing = (Missing("error rate", since, "no answer"),)
    d = evaluate(replace(snap(None), unavailable=missing), Facts(), NOW)
    assert d.action is Action.SIGNALS_UNAVAILABLE
    assert d.unavailable == missing
    assert str(d.reasons[0]) == "Signals unavailable: error rate (no answer, last read 2024-01-17 14:42:00 UTC)"


def test_pod_counts_never_read_are_unavailable_not_healthy():
    missing = (Missing("pod counts", None, "no answer"),)
    d = evaluate(replace(snap(0.001, health=Health()), unavailable=missing), Facts(), NOW)
    assert d.action is Action.SIGNALS_UNAVAILABLE
    assert "pod counts (no answer, never read)" in str(d.reasons[0])


def test_a_fresh_error_rate_above_5_percent_rolls_back_even_when_pods_are_unknown():
    missing = (Missing("pod counts", None, "no answer"),)
    d = evaluate(replace(snap(0.08, health=Health()), unavailable=missing), Facts(), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert conditions(d) == ["Error rate > 5%", "Signals unavailable"]


def test_a_service_seen_down_is_rolled_back_when_the_error_rate_is_missing():
    missing = (Missing("error rate", None, "no answer"),)
    down = Health(desired=3, ready=0, endpoint_ok=False, endpoint_status="HTTP 503")
    d = evaluate(replace(snap(None, health=down), unavailable=missing), Facts(), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert conditions(d)[0] == "Service completely down"


def test_missing_signals_beat_the_softer_rows_and_the_hotfix():
    missing = (Missing("error rate", None, "no data"),)
    spiking = replace(snap(None, latency=900.0), unavailable=missing)
    d = evaluate(spiking, Facts(minor_bug_workaround=True), NOW)
    assert d.action is Action.SIGNALS_UNAVAILABLE
    assert conditions(d) == ["Signals unavailable", "Latency spike", "Minor bug, workaround exists"]


def test_a_service_seen_down_is_rolled_back_even_when_the_metrics_are_stale():
    # Pods and the health endpoint are fresh; only Prometheus is behind.
    d = evaluate(snap(None, health=Health(desired=3, ready=0, endpoint_ok=False), stale=True), Facts(), NOW)
    assert d.action is Action.ROLLBACK_NOW
    assert conditions(d)[0] == "Service completely down"


def test_stale_error_rate_alongside_a_fresh_down_service_still_rolls_back():
    d = evaluate(snap(0.08, health=Health(desired=3, ready=0), stale=True), Facts(), NOW)
    assert d.action is Action.ROLLBACK_NOW


@pytest.mark.parametrize(
    ("facts", "action"),
    [
        (Facts(data_corruption=True), Action.ROLLBACK_NOW),
        (Facts(security_vulnerability=True), Action.ROLLBACK_NOW),
        (Facts(**IRREVERSIBLE), Action.FIX_FORWARD),
        (Facts(external_service_issue=True), Action.WAIT_EXTERNAL),
    ],
)
def test_stale_data_leaves_fact_driven_rows_alone(facts, action):
    d = evaluate(snap(0.001, stale=True), facts, NOW)
    assert d.action is action
    assert d.stale
    assert "Signals unavailable" not in conditions(d)


def test_fresh_decision_is_not_stale():
    assert not evaluate(snap(0.08), Facts(), NOW).stale


# --- monotonicity ------------------------------------------------------------


def test_urgency_orders_rollback_first_and_healthy_last():
    ordered = sorted(Action, key=urgency, reverse=True)
    assert ordered[0] is Action.ROLLBACK_NOW
    assert ordered[1] is Action.SIGNALS_UNAVAILABLE
    assert ordered[2] is Action.INVESTIGATE
    assert ordered[-1] is Action.HEALTHY
    assert urgency(Action.HOTFIX) > urgency(Action.HEALTHY)


facts_strategy = st.builds(
    Facts,
    data_corruption=st.booleans(),
    security_vulnerability=st.booleans(),
    migration_applied=st.booleans(),
    migration_reversible=st.sampled_from([None, True, False]),
    minor_bug_workaround=st.booleans(),
    external_service_issue=st.booleans(),
)
rate = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


# No example database: the suite writes nothing into the repository.
@settings(database=None, deadline=None, max_examples=300)
@given(
    facts=facts_strategy,
    low=rate,
    high=rate,
    down=st.booleans(),
    stale=st.booleans(),
    spike=st.booleans(),
    single=st.sampled_from([None, "/orders"]),
    intermittent=st.booleans(),
)
def test_a_higher_error_rate_never_yields_a_less_urgent_action(
    facts, low, high, down, stale, spike, single, intermittent
):
    low, high = sorted((low, high))
    health = Health(desired=3, ready=0 if down else 3)
    signals = Signals(latency_spike=spike, single_endpoint=single, intermittent=intermittent)
    at_low = evaluate(snap(low, health=health, signals=signals, stale=stale), facts, NOW)
    at_high = evaluate(snap(high, health=health, signals=signals, stale=stale), facts, NOW)
    assert urgency(at_high.action) >= urgency(at_low.action)


def test_one_failed_health_check_with_ready_pods_is_not_completely_down():
    blip = Health(desired=3, ready=3, endpoint_ok=False, endpoint_status="timeout after 2.0 s", endpoint_failures=1, endpoint_failures_down=2)
    assert not blip.completely_down
    assert evaluate(snap(0.001, health=blip), Facts(), NOW).action is Action.HEALTHY


def test_a_health_endpoint_failing_twice_in_a_row_is_completely_down():
    failing = Health(desired=3, ready=3, endpoint_ok=False, endpoint_status="HTTP 503", endpoint_failures=2, endpoint_failures_down=2)
    assert failing.completely_down
    assert evaluate(snap(0.001, health=failing), Facts(), NOW).action is Action.ROLLBACK_NOW


def test_a_failing_endpoint_with_no_ready_pods_is_down_at_once():
    assert Health(desired=3, ready=0, endpoint_ok=False, endpoint_failures=1, endpoint_failures_down=2).completely_down
    # Pods unknown: the endpoint's own error answer says down ...
    assert Health(endpoint_ok=False, endpoint_status="HTTP 503", endpoint_latency_ms=4.0, endpoint_failures=1,
                  endpoint_failures_down=2).completely_down


def test_no_answer_from_anything_is_signals_unavailable_not_rollback_now():
    """... but no answer from the endpoint while the pods cannot be read either
    is what a console that lost its network sees of every service: not proof
    of an outage, and never ROLLBACK NOW (nor exit 0 from `status`)."""
    nothing = Health(endpoint_ok=False, endpoint_status="timeout after 2.0 s", endpoint_failures=1, endpoint_failures_down=2)
    assert not nothing.completely_down and nothing.endpoint_unanswered
    blind = replace(snap(None, health=nothing), unavailable=(Missing("pod counts", None, "no answer"),
                                                              Missing("error rate", None, "query failed")))
    decision = evaluate(blind, Facts(), NOW)
    assert decision.action is Action.SIGNALS_UNAVAILABLE
    assert "health endpoint: timeout after 2.0 s (with the pods unknown, not proof" in decision.reasons[0].detail


def test_triage_order_puts_the_worst_first() -> None:
    """Decision first, then error rate, then p95, then the share of pods ready."""
    from console.decision import needs_action, triage_key
    from console.model import Decision, Health, Metrics, ServiceView, Snapshot

    def view(name, action, error=None, p95=None, ready=3):
        snapshot = Snapshot(name, NOW, metrics=Metrics(error_rate=error, latency_p95_ms=p95),
                            health=Health(desired=3, ready=ready))
        return ServiceView(snapshot, Decision(action))

    views = [
        view("quiet", Action.HEALTHY, 0.001, 100),
        view("slow", Action.INVESTIGATE, 0.02, 900),
        view("burning-a", Action.ROLLBACK_NOW, 0.09, 300),
        view("burning-b", Action.ROLLBACK_NOW, 0.14, 200),
        view("degraded", Action.INVESTIGATE, 0.02, 900, ready=1),
        view("unknown", Action.HEALTHY),
    ]
    order = [v.snapshot.service for v in sorted(views, key=triage_key)]
    assert order == ["burning-b", "burning-a", "degraded", "slow", "quiet", "unknown"]
    assert [v.snapshot.service for v in views if needs_action(v)] == ["slow", "burning-a", "burning-b", "degraded"]


missing_strategy = st.lists(
    st.builds(Missing, signal=st.sampled_from(["error rate", "pod counts", "metrics"]),
              since=st.none() | st.just(NOW - timedelta(minutes=2)), why=st.sampled_from(["no answer", "stale", "no data"])),
    min_size=1, max_size=2,
)


@settings(database=None, deadline=None, max_examples=300)
@given(facts=facts_strategy, rate=st.none() | rate, down=st.booleans(), missing=missing_strategy,
       spike=st.booleans(), single=st.sampled_from([None, "/orders"]), intermittent=st.booleans())
def test_a_missing_signal_is_never_healthy_and_a_service_seen_down_still_rolls_back(
    facts, rate, down, missing, spike, single, intermittent
):
    health = Health(desired=3, ready=0 if down else 3)
    signals = Signals(latency_spike=spike, single_endpoint=single, intermittent=intermittent)
    d = evaluate(replace(snap(rate, health=health, signals=signals), unavailable=tuple(missing)), facts, NOW)
    assert d.action is not Action.HEALTHY
    assert d.unavailable == tuple(missing)
    if down and not facts.migration_applied and not facts.external_service_issue:
        assert d.action is Action.ROLLBACK_NOW
    if d.action not in (Action.ROLLBACK_NOW, Action.FIX_FORWARD, Action.WAIT_EXTERNAL):
        assert d.action is Action.SIGNALS_UNAVAILABLE
        assert d.reasons[0].condition == "Signals unavailable"
