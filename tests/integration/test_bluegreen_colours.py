"""`--to-revision` by colour, and the colour shown with every blue-green
revision number, end to end: the served `blue-green` drill over HTTP (checkout:
green 1.5.0 live and failing, blue 1.4.0; both Deployments at their revision 2),
the console as real processes, and the real kubectl for what the operator reads
and checks by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml
from support import REPO, kubectl, served_drill

from console.drill.runner import DRILL_SLACK_ENV, slack_webhook_url

pytestmark = pytest.mark.integration

SELECTOR = "{.spec.selector.version}"


class Served:
    """A served drill (`drill ... --serve-only --write-config DIR`), its console and kubectl."""

    def __init__(self, directory: Path, tmp_path: Path) -> None:
        self.directory = directory
        self.tmp_path = tmp_path
        self.server = yaml.safe_load((directory / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]

    @property
    def config(self) -> str:
        return str(self.directory / "config.yaml")

    def console(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "XDG_STATE_HOME": str(self.tmp_path / "state"), "PYTHONUNBUFFERED": "1",
               DRILL_SLACK_ENV: slack_webhook_url(self.server)}
        return subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True,
                              timeout=180, env=env, cwd=REPO, stdin=subprocess.DEVNULL)

    def rollback(self, service: str, *args: str) -> subprocess.CompletedProcess:
        return self.console("rollback", service, "--config", self.config, "--reason", "errors above 5 %", *args)

    def kubectl(self, namespace: str, *args: str) -> str:
        return kubectl(self.directory / "kubeconfig", self.tmp_path / "kube-cache", namespace, *args)

    def live(self) -> str:
        """The live colour, as the runbook reads it."""
        return self.kubectl("shop", "get", "service", "checkout", "-o", f"jsonpath={SELECTOR}")

    def newest_revision(self, deployment: str) -> int:
        """The newest revision `kubectl rollout history` lists for a Deployment (what the operator types)."""
        out = self.kubectl("shop", "rollout", "history", f"deployment/{deployment}")
        return max(int(line.split()[0]) for line in out.splitlines() if line[:1].isdigit())

    def slack(self) -> list[str]:
        """The texts the drill's Slack sink received."""
        messages = httpx.get(f"{self.server}/slack/messages", timeout=10).json()["messages"]
        return [m["payload"]["text"] for m in messages]


def serve(tmp_path: Path, scenario: str | None = None):
    """A context manager yielding `Served` for the shipped `blue-green` drill, or a scenario file's text."""
    directory = tmp_path / "drill"
    args = ["blue-green"]
    if scenario is not None:
        path = tmp_path / "scenario.yaml"
        path.write_text(textwrap.dedent(scenario))
        args = ["--scenario-file", str(path)]
    context = served_drill(*args, "--write-config", str(directory), "--speed", "20")

    class _Serving:
        def __enter__(self) -> Served:
            context.__enter__()
            return Served(directory, tmp_path)

        def __exit__(self, *exc) -> None:
            context.__exit__(*exc)

    return _Serving()


def test_the_colour_form_switches_to_the_colour_named_and_every_output_names_it(tmp_path):
    with serve(tmp_path) as drill:
        # status: the live colour with its Deployment's number, in the line and in the JSON.
        status = drill.console("status", "checkout", "--config", drill.config)
        assert "checkout: " in status.stdout and "  green · revision 2" in status.stdout, status.stdout + status.stderr
        [seen] = json.loads(drill.console("status", "checkout", "--config", drill.config, "--json").stdout)
        assert (seen["revision"], seen["colour"], seen["revision_label"]) == (2, "green", "green · revision 2")

        # The number the operator reads from kubectl for blue's Deployment, typed with its colour.
        blue = drill.newest_revision("checkout-blue")
        assert blue == 2 == drill.newest_revision("checkout-green")
        dry = drill.rollback("checkout", "--to-revision", f"blue:{blue}", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "Plan: green · revision 2 → blue · revision 2 (1.5.0 → 1.4.0)" in dry.stdout
        assert drill.live() == "green"

        done = drill.rollback("checkout", "--to-revision", f"blue:{blue}", "--yes", "--timeout", "60")
        assert done.returncode == 0, done.stdout + done.stderr
        assert drill.live() == "blue"

        # The runbook's two messages name the colours with the numbers.
        texts = drill.slack()
        progress = next(t for t in texts if "Rollback in Progress" in t)
        assert "1.5.0 (green · revision 2) → 1.4.0 (blue · revision 2)" in progress
        complete = next(t for t in texts if "Rollback Complete" in t)
        assert "1.4.0 (blue · revision 2)" in complete

        # The RCA export: the record keeps the colours.
        md = drill.console("export", "--latest", "--format", "md", "--config", drill.config)  # the drill's own store
        assert md.returncode == 0, md.stdout + md.stderr
        assert "- **Version:** 1.5.0 → 1.4.0 (green · revision 2 → blue · revision 2)" in md.stdout
        data = json.loads(drill.console("export", "--latest", "--format", "json", "--config", drill.config).stdout)
        assert (data["rollback"]["from_colour"], data["rollback"]["to_colour"]) == ("green", "blue")

        # The colour alone names green as its Deployment is now: the gate sees that target (rolled back from).
        back = drill.rollback("checkout", "--to-revision", "green", "--dry-run")
        assert back.returncode == 3, back.stdout + back.stderr
        assert "Not rolling back checkout to 1.5.0:" in back.stdout
        assert drill.live() == "blue"


def test_wrong_colour_forms_exit_2_saying_what_to_type_and_change_nothing(tmp_path):
    with serve(tmp_path) as drill:
        ambiguous = drill.rollback("checkout", "--to-revision", "2", "--yes")
        assert ambiguous.returncode == 2, ambiguous.stdout + ambiguous.stderr
        assert "revision 2 is ambiguous: both blue and green carry it" in ambiguous.stdout
        assert "Choose the colour: --to-revision blue:2 or --to-revision green:2" in ambiguous.stdout

        stale = drill.rollback("checkout", "--to-revision", "blue:5", "--yes")
        assert stale.returncode == 2, stale.stdout + stale.stderr
        assert ("checkout: blue's Deployment is at revision 2, not 5 (blue = revision 2, green = revision 2). "
                "A blue-green rollback switches the traffic to a colour as its Deployment is now") in stale.stdout
        assert "Type --to-revision blue:2 to switch to blue · revision 2" in stale.stdout
        assert "kubectl rollout undo deployment/checkout-blue --to-revision=5" in stale.stdout

        unknown = drill.rollback("checkout", "--to-revision", "purple", "--yes")
        assert unknown.returncode == 2, unknown.stdout + unknown.stderr
        assert "checkout has no colour purple; its colours are blue = revision 2, green = revision 2" in unknown.stdout

        malformed = drill.rollback("checkout", "--to-revision", "blue:two", "--yes")
        assert malformed.returncode == 2
        assert "--to-revision 'blue:two': 'two' after the colon is not a revision number; give one like blue:3" \
            in malformed.stderr
        assert "Traceback" not in malformed.stderr + ambiguous.stderr + stale.stderr + unknown.stderr

        assert drill.live() == "green"
        assert drill.slack() == []


# A plain Deployment beside the blue-green pair: the colour form is refused for it.
MIXED = """\
    name: mixed-platforms
    description: checkout is blue-green; order-service is a plain Deployment.
    seed: 3
    start: "2026-12-04T10:00:00Z"
    services:
      - name: order-service
        namespace: shop
        replicas: 2
        image: registry.example.com/order-service
        ready_seconds: 1
        history:
          - {version: "1.2.2", age: 3d}
          - {version: "1.2.3", age: 2m}
        versions:
          "1.2.3": {error_rate: 0.08}
      - name: checkout
        namespace: shop
        kind: blue-green
        replicas: 2
        image: registry.example.com/checkout
        history:
          - {version: "1.4.0", environment: blue, age: 3d}
          - {version: "1.5.0", environment: green, age: 3m}
        versions:
          "1.5.0": {error_rate: 0.12}
    expect:
      action: rollback_now
      by: 5m
"""


def test_a_colour_for_a_service_without_colours_exits_2_with_a_sentence(tmp_path):
    with serve(tmp_path, MIXED) as drill:
        before = drill.kubectl("shop", "get", "deployment", "order-service", "-o",
                               "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}")
        refused = drill.rollback("order-service", "--to-revision", "blue:2", "--yes")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.strip() == (
            "rollback-console: --to-revision blue:2 names a blue-green colour, but order-service runs on "
            "kubernetes, which has no colours: give a revision number from its history (--to-revision N), or "
            "leave --to-revision out to roll back to the previous revision.")
        assert drill.kubectl("shop", "get", "deployment", "order-service", "-o",
                             "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}") == before
        # Its number still works as before, next to a blue-green service whose colour form works too.
        plain = drill.rollback("order-service", "--to-revision", "1", "--dry-run")
        assert plain.returncode == 0 and "Plan: revision 2 → 1 (1.2.3 → 1.2.2)" in plain.stdout, plain.stdout
        colour = drill.rollback("checkout", "--to-revision", "blue", "--dry-run")
        assert colour.returncode == 0, colour.stdout + colour.stderr
        assert "Plan: green · revision 2 → blue · revision 1 (1.5.0 → 1.4.0)" in colour.stdout
