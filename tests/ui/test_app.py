"""The console against the bad-deploy drill: the real Session, the real
Kubernetes platform and Prometheus client, the drill world's HTTP server.

The operator's path: the banner says ROLLBACK NOW because the error rate is
above 5 %, `r` shows the plan, `y` confirms, the rollout reports like
`kubectl rollout status`, the deployment's template is back on 1.2.2, and
the banner moves away from ROLLBACK NOW once the error rate falls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import wait_for

from console.config import load
from console.drill import runner
from console.drill.scenario import load_scenario
from console.model import Action, Progress
from console.session import Session
from console.store import Store
from console.ui.app import RollbackConsoleApp, build_app
from console.ui.messages import RollbackFinished, RollbackProgress
from console.ui.panes.banner import DecisionBanner
from console.ui.panes.history import HistoryTable
from console.ui.screens.override import OverrideScreen
from console.ui.screens.confirm import ConfirmRollbackScreen

pytestmark = pytest.mark.integration

# Simulated time runs this much faster: new pods get ready and the error-rate
# window moves on in seconds of wall time, without sleeping in the test.
DRILL_SPEED = 20.0
TIMEOUT = 60.0


@pytest.fixture
def bad_deploy(tmp_path: Path):
    """A live bad-deploy drill and a Session on it (refreshing every 0.5 s)."""
    running = runner.start(load_scenario("bad-deploy"), speed=DRILL_SPEED, directory=tmp_path / "drill")
    store = Store(tmp_path / "incidents.db")
    try:
        config = load(running.config_path).model_copy(update={"refresh_interval": 0.5})
        session = Session(config, store, clock=running.world.clock, operator="trainee@drill")
        yield running, session
    finally:
        store.close()
        running.stop()


def template_image(running: runner.RunningDrill) -> str:
    """The image in the drill world's order-service deployment template."""
    with running.world.store.lock:
        deployment = running.world.store.get("deployments", "shop", "order-service")
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def banner_text(app: RollbackConsoleApp) -> str:
    banner = app.query_one(DecisionBanner)
    reasons = app.query_one("#reasons").render()
    return f"{banner.headline_text}\n{reasons}"


async def test_bad_deploy_rollback_end_to_end(bad_deploy) -> None:
    running, session = bad_deploy
    messages: list[object] = []
    app = build_app(session, animate=False)

    async with app.run_test(size=(140, 45), message_hook=messages.append) as pilot:
        banner = app.query_one(DecisionBanner)
        await wait_for(pilot, lambda: banner.headline_text == "ROLLBACK NOW", "the ROLLBACK NOW banner")
        assert "Error rate > 5%: 8.0 %" in banner_text(app)
        assert template_image(running).endswith(":1.2.3")

        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the rollback plan")
        plan = app.screen.plan
        assert (plan.from_revision, plan.to_revision) == (3, 2)
        assert (plan.from_versions, plan.to_versions) == (("1.2.3",), ("1.2.2",))
        assert plan.calls and plan.calls[0].method == "PATCH"

        await pilot.press("y")
        finished = lambda: [m for m in messages if isinstance(m, RollbackFinished)]  # noqa: E731
        await wait_for(pilot, lambda: bool(finished()), "the rollback to finish", timeout=TIMEOUT * 2)
        progress: list[Progress] = [m.progress for m in messages if isinstance(m, RollbackProgress)]
        assert finished()[0].ok, f"rollback failed: {finished()[0].error}"
        assert any("successfully rolled out" in p.message for p in progress), [p.message for p in progress]
        assert progress[-1].done and not progress[-1].failed
        assert template_image(running).endswith(":1.2.2")
        # The timeline shows the steps, newest first.
        assert any("successfully rolled out" in e.text for e in app.events)

        # The error rate falls as 1.2.2 serves; a later refresh moves the banner.
        await wait_for(
            pilot,
            lambda: app.views["order-service"].decision.action != Action.ROLLBACK_NOW,
            "the decision to leave ROLLBACK NOW",
            timeout=TIMEOUT * 2,
        )
        await pilot.pause()
        assert banner.headline_text != "ROLLBACK NOW"
        assert app.rolling_back is None
        # The revision before the current one is now the bad deploy: no key hint may point at it.
        assert "Press r" not in str(app.query_one("#detail").render())

        await pilot.press("q")
        await asyncio.sleep(0)


async def test_the_plan_stays_until_its_change_is_sent_and_one_key_sends_one(bad_deploy) -> None:
    """`y` starts the rollback; the plan closes once the API server has the
    PATCH (the screen beneath is repainted after it, not while it is sent);
    keys pressed meanwhile (`y`, `a`, escape) neither send a second one nor cancel."""
    running, session = bad_deploy
    app = build_app(session, animate=False)
    messages: list[object] = []

    def patches() -> int:
        return len([r for r in running.server.requests if r[0] == "PATCH" and "/deployments/" in r[1]])

    async with app.run_test(size=(140, 45), message_hook=messages.append) as pilot:
        await wait_for(pilot, lambda: app.query_one(DecisionBanner).headline_text == "ROLLBACK NOW", "ROLLBACK NOW")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the rollback plan")
        screen = app.screen
        closed_after: list[int] = []
        dismiss = screen.dismiss

        def counting_dismiss(result=None):
            closed_after.append(patches())
            return dismiss(result)

        screen.dismiss = counting_dismiss
        await pilot.press("y", "y", "a", "escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmRollbackScreen), "the plan to close")
        assert closed_after == [1], closed_after  # closed once, with the PATCH already at the API server
        await wait_for(pilot, lambda: any(isinstance(m, RollbackFinished) for m in messages), "the rollback to finish",
                       timeout=TIMEOUT * 2)
        assert patches() == 1
        assert not any("cancelled" in n.message for n in app._notifications)


async def test_plan_for_the_current_revision_is_skipped_and_says_so(bad_deploy) -> None:
    """Enter on the current revision plans a rollback to it: kubectl's "skipped rollback"."""
    running, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=(140, 45)) as pilot:
        history = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: history.row_count == 3, "the rollout history")
        history.focus()
        history.move_cursor(row=history.get_row_index("3"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan")
        assert app.screen.plan.skip_reason
        assert not app.screen.query("#confirm")  # nothing to confirm
        await pilot.press("escape")
        await wait_for(pilot, lambda: any("skip" in e.text.lower() for e in app.events), "the skip in the timeline")
        assert template_image(running).endswith(":1.2.3")


def notifications(app: RollbackConsoleApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_after_the_rollback_r_does_not_offer_the_bad_version_again(bad_deploy) -> None:
    """A second `r` would be a second `rollout undo`: back to 1.2.3. The console
    says the service is on its target instead, also after a restart; a revision
    chosen in the history still plans."""
    running, session = bad_deploy
    messages: list[object] = []
    app = build_app(session, animate=False)
    async with app.run_test(size=(140, 45), message_hook=messages.append) as pilot:
        await wait_for(pilot, lambda: app.views.get("order-service") is not None
                       and app.views["order-service"].decision.action == Action.ROLLBACK_NOW, "ROLLBACK NOW")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the rollback plan")
        await pilot.press("y")
        finished = lambda: [m for m in messages if isinstance(m, RollbackFinished)]  # noqa: E731
        await wait_for(pilot, lambda: bool(finished()), "the rollback to finish", timeout=TIMEOUT * 2)
        assert finished()[0].ok, finished()[0].error
        incident_id = session.incident_state("order-service").id

        # kubectl semantics after an undo: revision 2 became 4 and is current; the rows
        # are updated in place.
        history = app.query_one(HistoryTable)
        await wait_for(pilot, lambda: [k.value for k in history.rows] == ["1", "3", "4"], "revision 4 in the history")
        assert history.get_cell("4", "current").plain == "●"
        assert history.get_cell("3", "current").plain == ""

        ticket = session.ticket("order-service")
        expected = "order-service is already on the target 1.2.2: "
        await pilot.press("r")
        await wait_for(pilot, lambda: any(n.startswith(expected) for n in notifications(app)),
                       "the already-on-target notice", timeout=15)
        [notice] = [n for n in notifications(app) if n.startswith(expected)]
        # Named from the record the rollback wrote on the deployment, with the incident.
        assert f"{session.operator} rolled order-service back from 1.2.3 to 1.2.2 at " in notice
        assert ticket in notice and "Pass --to-revision N to roll back further." in notice
        assert incident_id
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmRollbackScreen)

        # An explicit revision from the history is still planned.
        history.focus()
        history.move_cursor(row=history.get_row_index("1"))
        await pilot.press("enter")
        # Planned, and judged by the gate: the plan, or the override dialog once the runbook no longer says
        # ROLLBACK NOW (the metrics of 1.2.2 come in).
        await wait_for(pilot, lambda: isinstance(app.screen, (ConfirmRollbackScreen, OverrideScreen)),
                       "the plan to revision 1")
        assert (app.screen.plan.to_revision, app.screen.plan.to_versions) == (1, ("1.2.1",))
        await pilot.press("escape")
        await pilot.press("q")
    assert template_image(running).endswith(":1.2.2")

    # A restart on the same store: the in-memory hints are gone, the incident is not.
    restarted = Session(session.config, session.store, clock=running.world.clock, operator="trainee@drill")
    app = build_app(restarted, animate=False)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: "order-service" in app.views, "the first refresh")
        await pilot.press("r")
        await wait_for(pilot, lambda: any(n.startswith(expected) for n in notifications(app)),
                       "the notice after the restart", timeout=15)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmRollbackScreen)
        assert "Press r" not in str(app.query_one("#detail").render())
        await pilot.press("q")
    assert template_image(running).endswith(":1.2.2")


async def test_the_ui_thread_never_waits_for_the_store(bad_deploy) -> None:
    """Another writer holding the store (a headless run, a slow disk) must not
    freeze the screen: the incident strip, the clock and the message screen
    read what workers already fetched."""
    import threading

    from console.ui.screens.message import MessageScreen

    running, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: session.incident_state("order-service") is not None, "the incident to open")
        await app.workers.wait_for_complete()
        held, release = threading.Event(), threading.Event()

        def hold_the_store() -> None:
            with session.store._lock:
                held.set()
                release.wait(60.0)  # held until the UI has answered (or a minute: the UI waited)

        holder = threading.Thread(target=hold_the_store, daemon=True)
        holder.start()
        assert held.wait(10.0), "the store was not taken"
        try:
            app._tick()  # the escalation strip, its unsent count, the countdown, the checklist
            await pilot.press("m")
            # The UI answered while the store was still held: it never waited for it
            # (a condition, not a time: the holder lets go only when told or after a minute).
            still_held = holder.is_alive()
        finally:
            release.set()
            holder.join(10.0)
        assert still_held, "the UI thread waited for the store"
        assert isinstance(app.screen, MessageScreen)
        screen = app.screen
        await wait_for(pilot, lambda: screen.text.startswith("## "), "the message, composed in a worker")
        await pilot.press("escape")
        await pilot.press("q")


async def test_the_banner_says_signals_unavailable_when_prometheus_is_gone(tmp_path: Path, closed_port) -> None:
    """No data is never healthy: with Prometheus unreachable the banner says
    SIGNALS UNAVAILABLE and names what is missing, not HEALTHY."""
    running = runner.start(load_scenario("bad-deploy"), speed=DRILL_SPEED, directory=tmp_path / "drill")
    store = Store(tmp_path / "incidents.db")
    try:
        config = load(running.config_path)
        prometheus = config.prometheus.model_copy(update={"url": f"http://127.0.0.1:{closed_port}", "timeout": 0.5})
        config = config.model_copy(update={"refresh_interval": 0.5, "prometheus": prometheus})
        session = Session(config, store, clock=running.world.clock, operator="trainee@drill")
        app = build_app(session, animate=False)
        async with app.run_test(size=(140, 45)) as pilot:
            banner = app.query_one(DecisionBanner)
            await wait_for(pilot, lambda: banner.headline_text == "SIGNALS UNAVAILABLE", "the SIGNALS UNAVAILABLE banner")
            assert "Signals unavailable: error rate (query failed, never read)" in banner_text(app)
            assert "no error rate" in str(app.query_one("#banner-service").render())
            await pilot.press("q")
    finally:
        store.close()
        running.stop()


async def test_the_footer_offers_only_the_keys_of_the_screen_in_front() -> None:
    """Behind a dialog, r Roll back is neither shown nor acted on; the dialog's keys are on its buttons."""
    from ui_samples import RecordedSession

    from console.ui.screens.note import NoteScreen

    app = build_app(RecordedSession(), animate=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        actions = lambda: {b.binding.action for b in app.screen.active_bindings.values()}  # noqa: E731
        assert "rollback" in actions()
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NoteScreen), "the note dialog")
        assert "rollback" not in actions() and "decide" not in actions()
        assert app.check_action("rollback", ()) is False
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, NoteScreen), "the main screen")
        assert "rollback" in actions()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("key, screen", [("f", "FactsScreen"), ("m", "MessageScreen"), ("r", "ConfirmRollbackScreen")])
async def test_a_toast_never_covers_a_dialogs_action_bar(key: str, screen: str, size: tuple[int, int]) -> None:
    """A notification shown while a dialog is open stands clear of the dialog's buttons."""
    from ui_samples import RecordedSession

    app = build_app(RecordedSession(), animate=False)
    async with app.run_test(size=size, notifications=True) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        await pilot.press(key)
        await wait_for(pilot, lambda: type(app.screen).__name__ == screen and bool(app.screen.query("#dialog .buttons")),
                       f"the {screen} dialog")
        app.notify("The store could not be read; the timeline shows what was read before. " * 2,
                   title="Store", severity="warning", timeout=30)
        toasts = lambda: [t for t in app.screen.query("Toast") if t.region.area]  # noqa: E731
        await wait_for(pilot, lambda: bool(toasts()), "the toast")
        await pilot.pause()
        bar = app.screen.query_one("#dialog .buttons").region
        assert bar.area
        for toast in toasts():
            assert not toast.region.overlaps(bar), f"the toast {toast.region} covers the action bar {bar}"


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_rollback_plan_opens_with_its_service_and_revisions_in_sight(size: tuple[int, int]) -> None:
    """Which service the plan rolls back is the first thing read: at every size
    the dialog opens at its top (it opened scrolled to its buttons, the title
    out of sight), and the title stays in sight when the plan is scrolled."""
    from ui_samples import RecordedSession

    app = build_app(RecordedSession(), animate=False)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        await pilot.press("r")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmRollbackScreen", "the plan")
        await pilot.pause()
        await pilot.pause()
        dialog = app.screen.query_one("#dialog")
        title = app.screen.query_one(".dialog-title")
        assert str(title.render()) == f"Roll back {app.selected}?"
        inside = dialog.content_region
        assert inside.contains_region(title.region), (title.region, inside)
        if size[1] >= 30:
            assert inside.contains_region(app.screen.query_one("#plan-revisions").region)
        if dialog.max_scroll_y:
            dialog.scroll_end(animate=False)
            await pilot.pause()
            assert inside.contains_region(title.region) and dialog.scroll_y > 0


async def test_a_viewer_sees_everything_and_changes_nothing() -> None:
    from ui_samples import RecordedSession

    app = build_app(RecordedSession(), animate=False, viewer=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        assert "VIEWER" in str(app.query_one("#title-left").render())
        banner = app.query_one("DecisionBanner")
        shown = " ".join(str(w.render()) for w in banner.query("Static"))
        assert "Press r" not in shown and "Read-only view: the driving console rolls back" in shown
        for key in ("r", "d", "f", "m", "n", "o", "i", "x"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is app.screen_stack[0], f"{key} opened {app.screen}"
        assert not any(w.group in ("plan", "record", "export") for w in app.workers)


async def test_full_garbage_collections_wait_for_a_pause_in_the_operators_keys() -> None:
    """Once the first refresh is shown, the start-up heap is frozen out of the
    collector's full passes (which stopped keys for 60-150 ms at 500 services);
    Python no longer triggers oldest-generation passes itself: the app runs one
    after a refresh's frames every COLLECT_YOUNG_EVERY, not right after a key,
    and freezes what survived it, so the next walks only what came since (a
    frame's garbage is collected before it is frozen); nothing else freezes;
    the one full pass over everything waits for COLLECT_EVERY and for no key in
    COLLECT_WHEN_IDLE. Leaving the app gives the frozen objects and the
    collector's thresholds back."""
    import gc
    import time

    from ui_samples import RecordedSession

    from console.ui import app as app_module

    passes: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            passes.append(1)

    thresholds = gc.get_threshold()
    app = build_app(RecordedSession(), animate=False)
    gc.callbacks.append(count)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: bool(app.views), "the first refresh")
            frozen = gc.get_freeze_count()
            assert frozen > 0
            assert gc.get_threshold() == (thresholds[0], thresholds[1], app_module.NEVER)
            after_frames: list[bool] = []
            left: list[int] = []  # objects in the oldest generation right after the app's pass
            collect = app._collect_between_frames
            app._collect_between_frames = lambda: (collect(), after_frames.append(bool(passes)),
                                                   left.append(len(gc.get_objects(2))))
            # Due: a refresh's frames are followed by the oldest generation's pass, the start-up heap still frozen.
            app._young_collected_at = time.monotonic() - app_module.COLLECT_YOUNG_EVERY
            passes.clear()
            app.request_refresh()
            await wait_for(pilot, lambda: bool(after_frames), "a refresh's frames")
            assert after_frames == [True]
            assert gc.get_freeze_count() > 0  # not unfrozen
            assert left == [0]  # what survived the pass is frozen with the start-up heap
            frozen = gc.get_freeze_count()
            # Not due again: the next refresh is shown without one.
            passes.clear()
            app.request_refresh()
            await wait_for(pilot, lambda: len(after_frames) == 2, "a refresh's frames")
            assert after_frames[1] is False
            assert gc.get_freeze_count() <= frozen  # nor anything frozen
            applied: list[object] = []
            apply = app._apply_refresh
            app._apply_refresh = lambda message, **kw: (apply(message, **kw), applied.append(message))
            app.request_refresh()
            await wait_for(pilot, lambda: bool(applied), "a refresh applied")
            assert gc.get_freeze_count() <= frozen  # a refresh freezes nothing more
            # A full pass is due, but a key was just pressed: none is taken.
            app._collected_at = time.monotonic() - app_module.COLLECT_EVERY
            await pilot.press("down")
            applied.clear()
            app.request_refresh()
            await wait_for(pilot, lambda: bool(applied), "a refresh applied")
            assert app._collected_at < time.monotonic() - app_module.COLLECT_EVERY + 5
            # The operator has paused: the next refresh takes it.
            app._last_input = time.monotonic() - app_module.COLLECT_WHEN_IDLE
            passes.clear()
            app.request_refresh()
            await wait_for(pilot, lambda: app._collected_at > time.monotonic() - 5, "the full pass")
            assert passes
            assert gc.get_freeze_count() > 0  # frozen again after it
    finally:
        gc.callbacks.remove(count)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


async def test_a_ui_behind_on_refreshes_applies_only_the_newest() -> None:
    """Refreshes that arrive faster than the UI thread applies them are not
    queued with all their views: the newest one is applied, the others dropped."""
    from ui_samples import RecordedSession

    from console.ui.messages import refreshed

    app = build_app(RecordedSession(), animate=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        applied: list[object] = []
        apply = app._apply_refresh
        app._apply_refresh = lambda message, **kw: (apply(message, **kw), applied.append(message))
        views = list(app.views.values())
        burst = [refreshed(app.session, views) for _ in range(3)]
        for message in burst:  # all three land before the UI thread gets to them
            app.post_message(message)
        await wait_for(pilot, lambda: bool(applied), "a refresh applied")
        await pilot.pause()
        assert applied == [burst[-1]]


async def test_a_refreshs_panes_yield_to_keys_coming_in_but_not_for_long() -> None:
    """While the operator's keys come in, a refresh's banner and panes wait so
    the cursor's frames are painted alone; DETAILS_YIELD_MAX bounds the wait."""
    import time

    from ui_samples import RecordedSession

    from console.ui import app as app_module

    app = build_app(RecordedSession(), animate=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        shown: list[str] = []
        show = app._show_selected
        app._show_selected = lambda: (shown.append(app.selected), show())
        app._last_input = time.monotonic()  # a key just now
        app._show_details()
        assert shown == []  # waits for the keys to stop
        long_ago = time.monotonic() - app_module.DETAILS_YIELD_MAX
        app._show_details(since=long_ago)
        assert shown == [app.selected]  # ... but not for ever
        app._last_input = float("-inf")  # no keys: at once
        app._show_details()
        assert len(shown) == 2


@pytest.mark.parametrize("size, tight", [((80, 24), True), ((100, 30), True), ((140, 40), False)],
                         ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else str(v))
async def test_the_figures_are_never_cut_when_the_signals_lack_their_width(size, tight) -> None:
    """Several services on a narrow screen: the signals get less than their 76
    columns beside the table, and large digits were cut ("15.[" for 15.0,
    "6" for 600 ms). There the figures are plain text, whole."""
    from ui_samples import RecordedSession

    app = build_app(RecordedSession(("order-service", "payment-service", "cart-service")), animate=False)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        await pilot.pause()
        assert app.screen.has_class("-tight") is tight
        if not tight:
            assert app.screen.query_one("#error-rate-digits").display
            return
        for selector, text in (("#error-rate-plain", "8.0 %"), ("#latency-plain", "2.0 s"), ("#ready-plain", "3/3 ready")):
            figure = app.screen.query_one(selector)
            assert str(figure.render()) == text
            assert figure.region.width >= len(text), (selector, figure.region)  # whole, not cut
            assert not app.screen.query_one(selector.replace("plain", "digits")).display


async def test_c_on_a_compact_screen_brings_the_checklist_into_sight() -> None:
    """At 80x24 the checklist's row is behind the signals: `c` shows it (as `h`
    does) instead of focusing a list nobody sees, where Space ticks unseen items."""
    from ui_samples import RecordedSession

    from console.ui.panes.incident import ChecklistPane

    app = build_app(RecordedSession(), animate=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: bool(app.views), "the first refresh")
        assert app.screen.has_class("-compact") and not app.screen.has_class("-show-lower")
        await pilot.press("c")
        await pilot.pause()
        checklist = app.screen.query_one(ChecklistPane)
        assert app.screen.has_class("-show-lower") and checklist.display and checklist.has_focus
        assert checklist.region.area > 0
