"""The runbook's two messages (`m`): preview, edit, send to Slack, copy to the
clipboard (OSC 52), and see the messages that failed and are kept for resending."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message as TextualMessage
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea

from console.comms import MessageKind

KINDS = (MessageKind.ROLLBACK_IN_PROGRESS, MessageKind.ROLLBACK_COMPLETE, MessageKind.FIX_FORWARD,
         MessageKind.WAITING_EXTERNAL, MessageKind.ESCALATION, MessageKind.STATUS_UPDATE)
"""The messages F4 cycles through, in this order."""


class MessageScreen(ModalScreen[None]):
    """Preview and send one of the runbook's messages for `service`."""

    BINDINGS = [
        Binding("escape", "close", "Close", id="message.close"),
        Binding("f2,ctrl+s", "send", "Send to Slack", id="message.send", priority=True),
        Binding("f3", "copy", "Copy", id="message.copy", priority=True),
        Binding("f4", "switch", "Other message", id="message.switch", priority=True),
        Binding("f5", "resend", "Resend unsent", id="message.resend", priority=True),
        Binding("f6", "reset", "Undo edits", id="message.reset", priority=True),
    ]

    class Sent(TextualMessage):
        """A send (or resend) finished: `error` is the sentence when it failed."""

        def __init__(self, label: str, ok: bool, error: str | None, resent: int = 0, pending: list | None = None) -> None:
            super().__init__()
            self.label = label
            self.ok = ok
            self.error = error
            self.resent = resent
            # The unsent messages after it, read in the worker (the store is not read on the UI thread).
            self.pending: list = pending or []

    class Loaded(TextualMessage):
        """The message composed from the incident and live data, and the unsent ones, read in a worker."""

        def __init__(self, kind: MessageKind, text: str, pending: list) -> None:
            super().__init__()
            self.kind = kind
            self.text = text
            self.pending = pending

    def __init__(self, session, service: str, kind: MessageKind) -> None:
        super().__init__()
        self.session = session
        self.service = service
        self.kind = kind
        self.composed = ""
        self.sending = False
        self.results: list[Sent] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="-message"):
            yield Static("", id="message-title", classes="dialog-title", markup=False)
            yield Static("", id="message-where", markup=False)
            yield TextArea("", id="message-text", language="markdown", soft_wrap=True, show_line_numbers=False)
            yield Static("", id="message-status", markup=False)
            yield Static("", id="message-outbox", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Send (F2)", id="send", variant="primary")
                yield Button("Copy (F3)", id="copy")
                yield Button("Other (F4)", id="switch", tooltip="Another of the runbook's messages")
                yield Button("Resend (F5)", id="resend", tooltip="Resend the unsent messages")
                yield Button("Close (esc)", id="close")

    def on_mount(self) -> None:
        self.query_one(TextArea).cursor_blink = self.app.animate
        self._load()
        self.query_one(TextArea).focus()

    def _load(self) -> None:
        self.query_one("#message-title", Static).update(Content.styled(f"{self.kind.label} — {self.service}", "bold"))
        problem = self.session.slack_problem()
        where = (Content.styled(problem, "$sev-warning") if problem else
                 Content.assemble(("Posts to ", "$sev-muted"), (self.session.slack_channel, "bold"),
                                  (" through the Slack webhook. Edit freely; the runbook's template is filled from "
                                   "live data.", "$sev-muted")))
        self.query_one("#message-where", Static).update(where)
        self._load_worker(self.kind)

    @work(thread=True, exclusive=True, group="message-load", exit_on_error=False)
    def _load_worker(self, kind: MessageKind) -> None:
        # Composing may open the incident (a store write) and reads the outbox: not on the UI thread.
        text = self.session.compose_message(self.service, kind).text
        self.post_message(self.Loaded(kind, text, self.session.pending_messages(self.service)))

    def on_message_screen_loaded(self, message: Loaded) -> None:
        if message.kind is self.kind:
            self.composed = message.text
            self.query_one(TextArea).text = message.text
        self._show_outbox(message.pending)

    @property
    def text(self) -> str:
        """The message as it stands (with the operator's edits)."""
        return self.query_one(TextArea).text

    def _show_outbox(self, pending: list) -> None:
        lines = [Content.styled(f"⚠ {e.label}: not sent after {e.attempts} attempt{'s' if e.attempts != 1 else ''}"
                                f" — {e.last_error or 'not tried yet'} (kept; F5 resends)", "$sev-critical")
                 for e in pending]
        self.query_one("#message-outbox", Static).update(Content("\n").join(lines))

    def action_send(self) -> None:
        """Post the message (as edited) to Slack."""
        if self.sending:
            return
        self.sending = True
        self._status(Content.styled(f"Sending {self.kind.label}…", "bold"))
        self._send_worker(self.kind, self.text)

    @work(thread=True, group="message", exit_on_error=False)
    def _send_worker(self, kind: MessageKind, text: str) -> None:
        _, result = self.session.send_message(self.service, kind, text)
        self.post_message(self.Sent(kind.label, result.ok, result.error,
                                    pending=self.session.pending_messages(self.service)))

    def action_resend(self) -> None:
        """Try the unsent messages again."""
        if self.sending:
            return
        self.sending = True
        self._status(Content.styled("Resending unsent messages…", "bold"))
        self._resend_worker()

    @work(thread=True, group="message", exit_on_error=False)
    def _resend_worker(self) -> None:
        results = self.session.resend_pending(self.service)
        failed = next((r for _, r in results if not r.ok), None)
        self.post_message(self.Sent("Unsent messages", failed is None, failed.error if failed else None,
                                    resent=len(results), pending=self.session.pending_messages(self.service)))

    def on_worker_state_changed(self, event) -> None:
        # A send that crashed (the store failed) must not leave the screen "sending" forever;
        # the app turns the error into a sentence.
        if event.state.name == "ERROR":
            self.sending = False
            self._status(Content.styled("✗ The message could not be handled; see the notification.", "bold $sev-critical"))

    def on_message_screen_sent(self, message: Sent) -> None:
        self.sending = False
        self.results.append(message)
        if message.ok:
            what = f"{message.resent} message(s) resent" if message.resent else f"{message.label} sent to {self.session.slack_channel}"
            if message.label == "Unsent messages" and not message.resent:
                what = "Nothing to resend"
            self._status(Content.styled(f"✓ {what}; recorded in the timeline.", "bold $sev-ok"))
        else:
            self._status(Content.styled(f"✗ {message.label} not sent: {message.error}", "bold $sev-critical"))
        self._show_outbox(message.pending)
        # Not stopped: the app hears it too (the strip's unsent count, a notification).

    def _status(self, content: Content) -> None:
        self.query_one("#message-status", Static).update(content)

    def action_copy(self) -> None:
        """Copy the message to the clipboard (OSC 52) for other channels."""
        self.app.copy_to_clipboard(self.text)
        self._status(Content.styled("Copied to the clipboard (your terminal must allow OSC 52).", "$sev-ok"))

    def action_switch(self) -> None:
        """Show the next message (F4 cycles through KINDS)."""
        self.kind = KINDS[(KINDS.index(self.kind) + 1) % len(KINDS)]
        self._load()
        self._status(Content(""))

    def action_reset(self) -> None:
        """Back to the template filled from live data."""
        self._load()

    def action_close(self) -> None:
        """Close; unsent messages stay in the outbox."""
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"send": self.action_send, "copy": self.action_copy, "switch": self.action_switch,
         "resend": self.action_resend, "close": self.action_close}[event.button.id]()
