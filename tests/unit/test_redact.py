"""Secrets never reach the store, the screen or Slack."""

from __future__ import annotations

import pytest

from console.redact import MASK, redact, redact_data


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("hook https://hooks.slack.com/services/T0/B0/abcDEF123 failed", "abcDEF123", "https://hooks.slack.com/"),
        ("POST http://127.0.0.1:8080/slack/webhook/tok3n?x=1", "tok3n", "/slack/webhook/"),
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl", "Authorization: Bearer"),
        ("key AKIAIOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE", "key "),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", "aws_secret_access_key"),
        ("postgres://app:hunter2@db:5432/orders", "hunter2", "postgres://app:"),
        ("host=db password=hunter2 user=app", "hunter2", "user=app"),
        ("token xoxb-1234-5678-abcdef", "xoxb-1234", "token"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nat-ure", "eyJzdWIiOiIxIn0", "jwt"),
    ],
)
def test_redact_masks_the_secret_and_keeps_the_context(text, secret, kept):
    out = redact(text)
    assert secret not in out
    assert MASK in out
    assert kept in out


def test_ordinary_incident_text_is_untouched():
    text = "Rollback started: order-service 1.2.3 -> 1.2.2; error rate 8.0 %, p95 2000 ms"
    assert redact(text) == text


def test_redact_data_walks_nested_values_and_masks_secret_keys():
    data = {
        "password": "hunter2",
        "slack_webhook_url": "https://example.org/x",
        "notes": ["Bearer abcdef", {"token": "t0k"}],
        "replicas": 3,
        "ok": True,
        "empty_token": "",
    }
    assert redact_data(data) == {
        "password": MASK,
        "slack_webhook_url": MASK,
        "notes": [f"Bearer {MASK}", {"token": MASK}],
        "replicas": 3,
        "ok": True,
        "empty_token": "",
    }


@pytest.mark.parametrize("text", ["x" * 262_144, "ab12" * 65_536, "a:" * 131_072, "0f" * 131_072])
def test_a_long_unbroken_run_is_read_once_not_from_every_letter(text):
    """An error body of 256 KiB of one token (a Slack 400, a base64 blob) went
    through the URL-password pattern from each of its letters: 64 KiB took 23 s,
    256 KiB some six minutes, stalling the rollback that logged it. Read once,
    this returns at once."""
    assert redact(text) == text
    assert redact(text + " postgresql://app:hunter2@db/x") == text + " postgresql://app:[REDACTED]@db/x"
