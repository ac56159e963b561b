"""First, do no harm: the five situations of issue 12, each against a served
drill over HTTP, with scenario files the repository does not ship, the real
`kubectl` for what a person does by hand, and the console as real processes
(`python -m console`), each with its own state directory and user."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml
from support import REPO, kubectl, served_drill, wait_until

pytestmark = pytest.mark.integration

HOST = socket.gethostname()


class Drill:
    """A served drill (`drill --scenario-file F --serve-only --write-config DIR`)."""

    def __init__(self, directory: Path, tmp_path: Path) -> None:
        self.directory = directory
        self.tmp_path = tmp_path
        kubeconfig = yaml.safe_load((directory / "kubeconfig").read_text())
        self.server = kubeconfig["clusters"][0]["cluster"]["server"]

    @property
    def config(self) -> str:
        return str(self.directory / "config.yaml")

    def console(self, user: str, *args: str) -> subprocess.CompletedProcess:
        """`rollback-console ARGS` as `user` (USER/LOGNAME) with the user's own state directory."""
        env = {**os.environ, "USER": user, "LOGNAME": user, "XDG_STATE_HOME": str(self.tmp_path / f"state-{user}"),
               "PYTHONUNBUFFERED": "1"}
        return subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True, timeout=180,
                              env=env, cwd=REPO, stdin=subprocess.DEVNULL)

    def kubectl(self, namespace: str, *args: str) -> str:
        return kubectl(self.directory / "kubeconfig", self.tmp_path / "kube-cache", namespace, *args)

    def get(self, path: str) -> dict:
        return httpx.get(f"{self.server}{path}", timeout=10).json()

    def image(self, namespace: str, deployment: str) -> str:
        obj = self.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}")
        return obj["spec"]["template"]["spec"]["containers"][0]["image"]

    def wait(self, condition, what: str, timeout: float = 60.0) -> None:
        wait_until(condition, what, timeout, interval=0.2)


def serve(tmp_path: Path, scenario: str | None, name: str | None = None, speed: str = "20"):
    """A context manager yielding a `Drill` of a scenario file (text) or a shipped scenario (`name`)."""
    directory = tmp_path / "drill"
    args = ["--write-config", str(directory), "--speed", speed]
    if scenario is not None:
        path = tmp_path / "scenario.yaml"
        path.write_text(textwrap.dedent(scenario))
        args = ["--scenario-file", str(path), *args]
    else:
        args = [name, *args]

    class _Serving:
        def __enter__(self) -> Drill:
            self._context = served_drill(*args)
            self._context.__enter__()
            return Drill(directory, tmp_path)

        def __exit__(self, *exc) -> None:
            self._context.__exit__(*exc)

    return _Serving()


# --- 1. after a manual undo ---------------------------------------------------------------------

LEDGER = """\
    name: ledger-manual-undo
    description: ledger-api 7.3.0 and 7.3.1 both fail; 7.2.0 was good.
    seed: 7
    start: "2026-12-04T10:00:00Z"
    services:
      - name: ledger-api
        namespace: finance
        replicas: 3
        image: registry.example.com/ledger-api
        ready_seconds: 1
        history:
          - {version: "7.0.0", age: 20d}
          - {version: "7.1.0", age: 10d}
          - {version: "7.2.0", age: 5d}
          - {version: "7.3.0", age: 2h}
          - {version: "7.3.1", age: 5m}
        versions:
          "7.3.0": {error_rate: 0.11}
          "7.3.1": {error_rate: 0.11}
    expect:
      action: rollback_now
      by: 5m
"""


def test_after_a_manual_undo_the_console_never_rolls_the_bad_version_out_again(tmp_path):
    with serve(tmp_path, LEDGER) as drill:
        assert drill.kubectl("finance", "rollout", "undo", "deployment/ledger-api", "--to-revision=3").strip() \
            == "deployment.apps/ledger-api rolled back"
        assert "successfully rolled out" in drill.kubectl("finance", "rollout", "status", "deployment/ledger-api",
                                                          "--timeout=60s")
        # What the API server keeps, as a real one does: the reused ReplicaSet remembers revision 3,
        # and the Deployment's managedFields name kubectl's undo as the template's manager.
        deployment = drill.get("/apis/apps/v1/namespaces/finance/deployments/ledger-api")
        managers = {e["manager"] for e in deployment["metadata"]["managedFields"]
                    if "f:template" in e["fieldsV1"].get("f:spec", {})}
        [manager] = managers  # whatever kubectl sent (fieldManager, else its User-Agent), as the apiserver does
        assert manager.startswith("kubectl")
        replica_sets = drill.get("/apis/apps/v1/namespaces/finance/replicasets")["items"]
        [reused] = [rs for rs in replica_sets
                    if rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision") == "6"]
        assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "3"

        result = drill.console("alice", "rollback", "ledger-api", "--config", drill.config, "--reason", "errors",
                               "--yes")
        assert result.returncode == 3, result.stdout + result.stderr
        assert "Not rolling back ledger-api to 7.3.1:" in result.stdout
        assert f"{manager} rolled ledger-api back from 7.3.1 to 7.2.0 at " in result.stdout
        assert "Pass --force to roll back anyway" in result.stdout
        assert drill.image("finance", "ledger-api").endswith(":7.2.0")

        # 7.3.0 was passed over by the undo: going there explicitly is refused too.
        result = drill.console("alice", "rollback", "ledger-api", "--config", drill.config, "--reason", "errors",
                               "--to-revision", "4", "--yes")
        assert result.returncode == 3, result.stdout + result.stderr
        assert "7.3.0 was rolled back from" in result.stdout
        assert drill.image("finance", "ledger-api").endswith(":7.2.0")


# --- 2. two operators, two consoles -------------------------------------------------------------

def test_two_consoles_see_each_others_rollback_on_the_deployment(tmp_path):
    with serve(tmp_path, None, name="bad-deploy") as drill:
        alice = drill.console("alice", "rollback", "order-service", "--config", drill.config, "--reason",
                              "error rate 8%", "--yes", "--timeout", "60")
        assert alice.returncode == 0, alice.stdout + alice.stderr
        assert drill.image("shop", "order-service").endswith(":1.2.2")
        annotations = drill.get("/apis/apps/v1/namespaces/shop/deployments/order-service")["metadata"]["annotations"]
        [record] = json.loads(annotations["rollback-console.io/rollbacks"])
        assert (record["by"], record["from"], record["to"], record["why"]) == (
            f"alice@{HOST}", ["1.2.3"], ["1.2.2"], "error rate 8%")
        assert record["incident"].startswith("INC-")
        # As a real controller does, the drill copies the Deployment's annotation onto its current ReplicaSet.
        replica_sets = drill.get("/apis/apps/v1/namespaces/shop/replicasets")["items"]
        [current] = [rs for rs in replica_sets if rs["metadata"]["annotations"].get(
            "deployment.kubernetes.io/revision") == "4" and rs["metadata"]["name"].startswith("order-service-")]
        assert json.loads(current["metadata"]["annotations"]["rollback-console.io/rollbacks"]) == [record]

        # Bob, on his own laptop (his own state directory), still sees the error rate of a minute ago.
        bob = drill.console("bob", "rollback", "order-service", "--config", drill.config, "--reason",
                            "error rate 8%", "--yes", "--timeout", "60")
        assert bob.returncode == 3, bob.stdout + bob.stderr
        assert (f"alice@{HOST} rolled order-service back from 1.2.3 to 1.2.2 at " in bob.stdout
                and record["incident"] in bob.stdout), bob.stdout
        assert drill.image("shop", "order-service").endswith(":1.2.2")

        # Alice again: her own rollback is why; nothing to do (exit 0), nothing changed.
        again = drill.console("alice", "rollback", "order-service", "--config", drill.config, "--reason", "x",
                              "--yes")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "order-service is already on the target 1.2.2" in again.stdout
        assert drill.image("shop", "order-service").endswith(":1.2.2")

        # Bob's override is possible, and recorded with its reason on the object.
        forced = drill.console("bob", "rollback", "order-service", "--config", drill.config, "--reason",
                               "1.2.2 corrupts invoices; 1.2.3 is the lesser evil", "--force", "--yes",
                               "--timeout", "60")
        assert forced.returncode in (0, 1), forced.stdout + forced.stderr  # 1.2.3 may verify unhealthy
        assert "WARNING (--force): 1.2.3 was rolled back from" in forced.stdout
        records = json.loads(drill.get("/apis/apps/v1/namespaces/shop/deployments/order-service")
                             ["metadata"]["annotations"]["rollback-console.io/rollbacks"])
        assert [r["by"] for r in records] == [f"alice@{HOST}", f"bob@{HOST}"]


# --- 3. blue-green switched back by hand --------------------------------------------------------

def test_a_selector_switched_by_hand_is_not_switched_back(tmp_path):
    with serve(tmp_path, None, name="blue-green") as drill:
        drill.kubectl("shop", "patch", "service", "checkout", "-p", '{"spec":{"selector":{"version":"blue"}}}')
        service = drill.get("/api/v1/namespaces/shop/services/checkout")
        assert service["spec"]["selector"]["version"] == "blue"
        owners = [e["manager"] for e in service["metadata"]["managedFields"]
                  if "f:version" in e["fieldsV1"].get("f:spec", {}).get("f:selector", {})]
        assert owners == ["kubectl-patch"]

        result = drill.console("carol", "rollback", "checkout", "--config", drill.config, "--reason", "errors",
                               "--yes")
        assert result.returncode == 3, result.stdout + result.stderr
        assert "kubectl-patch rolled checkout back from 1.5.0 to 1.4.0 at " in result.stdout
        assert drill.get("/api/v1/namespaces/shop/services/checkout")["spec"]["selector"]["version"] == "blue"


def test_an_ambiguous_blue_green_revision_is_refused_naming_the_colours(tmp_path):
    # Both colours' Deployments carry revision 2 (`kubectl rollout history deployment/checkout-blue`
    # and .../checkout-green both end at 2): the number alone does not say which colour.
    with serve(tmp_path, None, name="blue-green") as drill:
        result = drill.console("carol", "rollback", "checkout", "--config", drill.config, "--reason", "errors",
                               "--to-revision", "2", "--yes")
        assert result.returncode == 2, result.stdout + result.stderr
        assert ("revision 2 is ambiguous: both blue and green carry it (blue = revision 2, green = revision 2; "
                in result.stdout)
        assert ("Choose the colour: --to-revision blue:2 or --to-revision green:2; or roll back without a "
                "revision number") in result.stdout
        assert drill.get("/api/v1/namespaces/shop/services/checkout")["spec"]["selector"]["version"] == "green"


# --- 4. a crash loop past its progress deadline -------------------------------------------------

CRASH_LOOP = """\
    name: crash-loop-deadline
    description: billing-worker 4.0.0 never starts; its rollout passed its progress deadline.
    seed: 11
    start: "2026-12-04T10:00:00Z"
    services:
      - name: billing-worker
        namespace: billing
        replicas: 2
        image: registry.example.com/billing-worker
        strategy: Recreate
        progress_deadline_seconds: 20
        ready_seconds: 1
        history:
          - {version: "3.4.2", age: 3d}
          - {version: "4.0.0", age: 1m}
        versions:
          "4.0.0": {ready: false, healthy: false}
    expect:
      action: rollback_now
      by: 5m
"""


def test_a_rollback_after_the_progress_deadline_succeeds_as_kubectl_says(tmp_path):
    with serve(tmp_path, CRASH_LOOP) as drill:
        def deadline_exceeded() -> bool:
            status = drill.get("/apis/apps/v1/namespaces/billing/deployments/billing-worker").get("status") or {}
            return any(c.get("reason") == "ProgressDeadlineExceeded" for c in status.get("conditions") or [])

        drill.wait(deadline_exceeded, "ProgressDeadlineExceeded")
        result = drill.console("dave", "rollback", "billing-worker", "--config", drill.config, "--reason",
                               "crash loop", "--yes", "--timeout", "60")
        assert result.returncode == 0, result.stdout + result.stderr
        assert 'deployment "billing-worker" successfully rolled out' in result.stdout
        assert "exceeded its progress deadline" not in result.stdout
        assert "successfully rolled out" in drill.kubectl("billing", "rollout", "status",
                                                          "deployment/billing-worker", "--timeout=30s")
        # A re-run by someone else plans 3.4.2 -> 4.0.0 and is refused: 4.0.0 was rolled back from.
        again = drill.console("erin", "rollback", "billing-worker", "--config", drill.config, "--reason", "x",
                              "--yes")
        assert again.returncode == 3, again.stdout + again.stderr
        assert f"dave@{HOST} rolled billing-worker back from 4.0.0 to 3.4.2" in again.stdout
        assert drill.image("billing", "billing-worker").endswith(":3.4.2")


# --- 5. an irreversible migration ---------------------------------------------------------------

def test_an_irreversible_migration_refuses_a_plain_rollback(tmp_path):
    with serve(tmp_path, None, name="bad-deploy") as drill:
        declared = drill.console("frank", "facts", "order-service", "--config", drill.config,
                                 "--set", "migration_applied=true", "--set", "migration_reversible=false")
        assert declared.returncode == 0, declared.stdout + declared.stderr
        status = drill.console("frank", "status", "order-service", "--config", drill.config, "--json")
        assert json.loads(status.stdout)[0]["decision"]["action"] == "fix_forward"
        result = drill.console("frank", "rollback", "order-service", "--config", drill.config, "--reason", "errors",
                               "--yes")
        assert result.returncode == 3, result.stdout + result.stderr
        assert "is not reversible" in result.stdout and "DO NOT ROLL BACK: FIX FORWARD" in result.stdout
        assert drill.image("shop", "order-service").endswith(":1.2.3")


def test_the_drill_serves_its_migration_ledger_and_fix_forward_needs_no_declaration(tmp_path):
    with serve(tmp_path, None, name="migration-applied") as drill:
        config = yaml.safe_load((drill.directory / "config.yaml").read_text())
        url = config["services"][0]["database"]["migration_status"]["url"]
        flyway = httpx.get(url, timeout=10).json()  # Spring Boot Actuator's /actuator/flyway shape
        migrations = flyway["contexts"]["invoice-service"]["flywayBeans"]["flyway"]["migrations"]
        assert [(m["version"], m["description"], m.get("reversible")) for m in migrations] == [
            ("0001", "baseline", None), ("0042", "split_address", False)]
        status = drill.console("gina", "status", "invoice-service", "--config", drill.config, "--json")
        assert status.returncode == 0, status.stderr
        decision = json.loads(status.stdout)[0]["decision"]
        assert decision["action"] == "fix_forward", decision
        result = drill.console("gina", "rollback", "invoice-service", "--config", drill.config, "--reason",
                               "errors", "--yes")
        assert result.returncode == 3, result.stdout + result.stderr
        assert "0042_split_address" in result.stdout and "data loss" in result.stdout
        assert drill.image("billing", "invoice-service").endswith(":5.0.0")


def test_a_reversible_migration_in_the_drill_gets_the_three_step_plan_with_nothing_declared(tmp_path):
    with serve(tmp_path, None, name="reversible-migration") as drill:
        status = drill.console("hank", "status", "--config", drill.config, "--json")
        assert status.returncode == 0, status.stderr
        [service] = json.loads(status.stdout)
        assert service["decision"]["action"] != "fix_forward", service["decision"]
        assert any("reversible" in reason for reason in service["decision"]["reasons"]), service["decision"]


def test_an_override_needs_the_configured_approver_and_a_no_op_posts_nothing(tmp_path):
    with serve(tmp_path, None, name="bad-deploy") as drill:
        config = yaml.safe_load((drill.directory / "config.yaml").read_text())
        config["gate"] = {"approvers": ["dana@lead"], "rolled_back_hours": 48}
        approved = tmp_path / "approved.yaml"
        approved.write_text(yaml.safe_dump(config))
        # --to-revision of the current revision: nothing to do, and no message is posted.
        noop = drill.console("ivan", "rollback", "order-service", "--config", str(approved), "--reason", "x",
                             "--to-revision", "3", "--yes")
        assert noop.returncode == 0, noop.stdout + noop.stderr
        assert "skipped rollback (current template already matches revision 3)" in noop.stdout
        assert "Rollback Complete" not in noop.stdout and "Rollback in Progress" not in noop.stdout

        alice = drill.console("alice", "rollback", "order-service", "--config", str(approved), "--reason", "errors",
                              "--yes", "--timeout", "60")
        assert alice.returncode == 0, alice.stdout + alice.stderr
        # Ivan's override of Alice's rollback needs a Level 2 approver named in the config.
        forced = drill.console("ivan", "rollback", "order-service", "--config", str(approved), "--reason",
                               "1.2.2 corrupts invoices", "--force", "--yes")
        assert forced.returncode == 3, forced.stdout + forced.stderr
        assert "this needs approval by a Level 2 approver: --approved-by one of dana@lead" in forced.stdout
        wrong = drill.console("ivan", "rollback", "order-service", "--config", str(approved), "--reason",
                              "1.2.2 corrupts invoices", "--force", "--approved-by", "eve", "--yes")
        assert wrong.returncode == 3 and "eve is not one" in wrong.stdout, wrong.stdout
        assert drill.image("shop", "order-service").endswith(":1.2.2")
        usage = drill.console("ivan", "rollback", "order-service", "--config", str(approved), "--reason", "x",
                              "--approved-by", "dana@lead", "--yes")
        assert usage.returncode == 2 and "--approved-by goes with --force" in usage.stderr
        approved_run = drill.console("ivan", "rollback", "order-service", "--config", str(approved), "--reason",
                                     "1.2.2 corrupts invoices", "--force", "--approved-by", "dana@lead", "--yes",
                                     "--timeout", "60")
        assert approved_run.returncode in (0, 1), approved_run.stdout + approved_run.stderr  # 1.2.3 may be unhealthy
        assert drill.image("shop", "order-service").endswith(":1.2.3")
        records = json.loads(drill.get("/apis/apps/v1/namespaces/shop/deployments/order-service")
                             ["metadata"]["annotations"]["rollback-console.io/rollbacks"])
        assert records[-1]["by"] == f"ivan@{HOST}" and records[-1]["why"] == "1.2.2 corrupts invoices"


def test_a_revision_an_aborted_canary_cannot_go_to_is_a_usage_error(tmp_path):
    with serve(tmp_path, None, name="canary") as drill:
        result = drill.console("jo", "rollback", "search", "--config", drill.config, "--reason", "x",
                               "--to-revision", "1", "--yes")
        assert result.returncode == 2, result.stdout + result.stderr
        assert "A canary is rolled back by aborting it to the stable revision" in result.stdout
        aborted = drill.console("jo", "rollback", "search", "--config", drill.config, "--reason", "canary errors",
                                "--yes", "--timeout", "60")
        assert aborted.returncode == 0, aborted.stdout + aborted.stderr  # the canary fails: ROLLBACK NOW
        # The abort is recorded on the VirtualService, where every console reads it.
        vs = drill.get("/apis/networking.istio.io/v1beta1/namespaces/shop/virtualservices/search")
        [record] = json.loads(vs["metadata"]["annotations"]["rollback-console.io/rollbacks"])
        assert (record["by"], record["to"], record["why"]) == (f"jo@{HOST}", ["3.1.0"], "canary errors")
        again = drill.console("jo", "rollback", "search", "--config", drill.config, "--reason", "x",
                              "--to-revision", "1", "--yes")
        assert again.returncode == 2, again.stdout + again.stderr


def test_facts_set_names_what_is_wrong_and_changes_nothing(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("services:\n  - name: order-service\n    namespace: shop\n")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}

    def facts(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "console", "facts", "order-service", "--config", str(config),
                               *args], capture_output=True, text=True, timeout=60, env=env, cwd=REPO)

    wrong = facts("--set", "migration_applied=true", "--set", "no_such_fact=1")
    assert wrong.returncode == 2 and "no_such_fact is not a fact; the facts are data_corruption" in wrong.stderr
    bad = facts("--set", "migration_reversible=maybe")
    assert bad.returncode == 2 and "migration_reversible is true or false or unknown" in bad.stderr
    shown = facts()
    assert shown.returncode == 0 and "migration_applied: false" in shown.stdout  # nothing half-done
    done = facts("--set", "migration_applied=yes", "--set", "migration_name=0042_split_address")
    assert done.returncode == 0, done.stderr
    assert "migration_applied: true" in done.stdout and "migration_name: 0042_split_address" in done.stdout
    assert "migration_applied: true" in facts().stdout  # kept in the incident store
    # As --set takes them, not Python's spelling.
    assert "migration_reversible: null" in done.stdout and "True" not in done.stdout and "None" not in done.stdout


def test_a_hand_switch_shows_in_another_consoles_timeline_within_a_refresh(tmp_path):
    from datetime import datetime, timezone

    from console.config import load
    from console.drill import runner
    from console.drill.scenario import load_scenario
    from console.session import Session
    from console.store import Store

    running = runner.start(load_scenario("blue-green"), speed=20.0, directory=tmp_path / "drill",
                           start_at=datetime.now(timezone.utc).replace(microsecond=0))
    store = Store(tmp_path / "incidents.db")
    session = Session(load(running.config_path), store, operator="kim@laptop")
    try:
        session.refresh_blocking()
        drill = Drill(running.directory, tmp_path)
        drill.kubectl("shop", "patch", "service", "checkout", "-p", '{"spec":{"selector":{"version":"blue"}}}')

        def noted() -> bool:
            session.refresh_blocking()
            return any(e.actor == "kubectl-patch" and "rolled checkout back from 1.5.0 to 1.4.0" in e.text
                       for e in session.events("checkout"))

        drill.wait(noted, "the switch in the timeline")
        session.refresh_blocking()
        assert len([e for e in session.events("checkout") if e.actor == "kubectl-patch"]) == 1  # once
    finally:
        session.close()
        store.close()
        running.stop()
