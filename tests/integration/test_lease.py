"""Rollback leases and the Session's use of them, against drill worlds over
HTTP: one rollback at a time per service across consoles, expired leases
taken over safely, Forbidden and unreachable clusters as sentences, a rollout
that never becomes ready, several clusters in one config, and the headless
command on blue-green and canary services."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest_adapters import DRILL_SPEED, require
from support import wait_until

from console import incident as incidents
from console.config import parse
from console.platforms.base import Conflict, Forbidden, Unavailable
from console.platforms.kubernetes import KubernetesPlatform
from console.platforms.lease import LeaseHolder, RollbackLease, lease_name
from console.session import Session
from console.store import Store

LEASE = "rollback-console-order-service"
HELD = re.compile(
    r"^order-service is being rolled back by alice@laptop since \d\d:\d\d:\d\d UTC "
    r"\(lease shop/rollback-console-order-service; last renewed \d\d:\d\d:\d\d UTC, "
    r"expires \d\d:\d\d:\d\d UTC unless renewed\); wait for it or coordinate in the war room$"
)


@pytest.fixture
def drills():
    """Start drill worlds by scenario name; all are stopped at the end."""
    try:
        from console.drill import runner
        from console.drill.scenario import load_scenario
    except ImportError as exc:
        require(False, f"the drill world cannot be imported: {exc}")
        raise
    running = []

    def start(name: str = "bad-deploy", speed: float = DRILL_SPEED):
        drill = runner.start(load_scenario(name), speed=speed)
        running.append(drill)
        return drill

    yield start
    for drill in running:
        drill.stop()


def _session(drill, tmp_path: Path, operator: str, data: dict | None = None) -> Session:
    data = data or yaml.safe_load(drill.config_path.read_text())
    config = parse(data, str(drill.config_path), drill.config_path.parent)
    return Session(config, Store(tmp_path / f"{operator}.db"), clock=drill.world.clock, operator=operator)


def _lease(drill, holder: str, ttl: float = 60) -> RollbackLease:
    platform = KubernetesPlatform(
        "order-service", "shop", "order-service", kubeconfig=str(drill.kubeconfig_path), clock=drill.world.clock
    )
    return platform.rollback_lease(holder, ttl)


def _world_lease(drill) -> dict | None:
    try:
        return drill.world.store.get("leases", "shop", LEASE)
    except Exception:  # the drill store's NotFound
        return None


def _image(drill) -> str:
    drill.world.advance()
    return drill.world.store.get("deployments", "shop", "order-service")["spec"]["template"]["spec"]["containers"][0]["image"]


# --- the lease itself -----------------------------------------------------------------


def test_lease_is_created_renewed_and_released(drills):
    drill = drills()
    alice = _lease(drill, "alice@laptop", ttl=60)

    with alice:
        held = _world_lease(drill)
        assert held is not None
        assert held["spec"]["holderIdentity"] == "alice@laptop"
        assert held["spec"]["leaseDurationSeconds"] == 60
        assert held["spec"]["leaseTransitions"] == 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", held["spec"]["acquireTime"])
        first_renewal = held["spec"]["renewTime"]
        # A third of the TTL later the background renewer extends it.
        drill.world.clock.advance(25)
        wait_until(lambda: _world_lease(drill)["spec"]["renewTime"] != first_renewal, "the lease's renewal",
                   timeout=5, interval=0.05)
        assert _world_lease(drill)["spec"]["renewTime"] > first_renewal
        assert _world_lease(drill)["spec"]["acquireTime"] == held["spec"]["acquireTime"]
        info = _lease(drill, "bob@desk").current()
        assert isinstance(info, LeaseHolder)
        assert (info.holder, info.expired, info.lease) == ("alice@laptop", False, "shop/" + LEASE)

    assert _world_lease(drill) is None
    assert _lease(drill, "bob@desk").current() is None


def test_a_held_lease_refuses_a_second_console(drills):
    drill = drills()
    alice, bob = _lease(drill, "alice@laptop"), _lease(drill, "bob@desk")
    with alice:
        with pytest.raises(Conflict) as caught:
            bob.acquire()
        assert HELD.match(str(caught.value)), str(caught.value)
        # The same user on the same host in another terminal is another console.
        with pytest.raises(Conflict):
            _lease(drill, "alice@laptop").acquire()
    bob.acquire()
    assert _world_lease(drill)["spec"]["holderIdentity"] == "bob@desk"
    bob.release()


def test_an_expired_lease_is_taken_over_and_its_holder_learns_it(drills):
    drill = drills()
    alice = _lease(drill, "alice@laptop", ttl=60)
    alice.acquire()  # and never renewed: a crashed console
    drill.world.clock.advance(61)
    assert _lease(drill, "bob@desk").current().expired

    bob = _lease(drill, "bob@desk")
    bob.acquire()

    taken = _world_lease(drill)
    assert taken["spec"]["holderIdentity"] == "bob@desk"
    assert taken["spec"]["leaseTransitions"] == 1
    with pytest.raises(Conflict, match="was taken over by bob@desk while this console was rolling back"):
        alice.renew()
    assert alice.lost and not alice.held
    alice.release()  # never deletes someone else's lease
    assert _world_lease(drill)["spec"]["holderIdentity"] == "bob@desk"


def test_a_holder_that_stopped_renewing_is_named_as_presumed_gone_with_the_expiry(drills):
    drill = drills()
    _lease(drill, "alice@laptop", ttl=60).acquire()  # and never renewed: a console killed mid-rollback
    drill.world.clock.advance(45)  # two renewals (every 20 s) missed, 15 s before it expires
    with pytest.raises(Conflict) as caught:
        _lease(drill, "bob@desk").acquire()
    text = str(caught.value)
    assert re.search(r"last renewed \d\d:\d\d:\d\d UTC, expires \d\d:\d\d:\d\d UTC unless renewed", text), text
    assert re.search(r"has not renewed it for 4[5-9] s and is presumed gone", text), text
    assert re.search(r"the lease expires in 1[0-5] s, then it can be taken over", text), text
    assert text.endswith("confirm with alice@laptop and delete it: kubectl delete lease -n shop " + LEASE)


def test_a_renewing_holder_is_not_presumed_gone():
    from datetime import datetime, timedelta, timezone

    at = datetime(2024, 1, 17, 14, 2, 11, tzinfo=timezone.utc)
    holder = LeaseHolder("order-service", "alice@laptop", "shop/" + LEASE, at, at + timedelta(seconds=20), 60,
                         seen_at=at + timedelta(seconds=30))
    assert not holder.presumed_gone
    assert holder.sentence() == (
        "order-service is being rolled back by alice@laptop since 14:02:11 UTC (lease shop/" + LEASE + "; "
        "last renewed 14:02:31 UTC, expires 14:03:31 UTC unless renewed); wait for it or coordinate in the war room"
    )


def test_takeover_races_are_settled_by_the_resource_version(drills, monkeypatch):
    drill = drills()
    _lease(drill, "alice@laptop", ttl=60).acquire()
    drill.world.clock.advance(61)
    bob, carol = _lease(drill, "bob@desk"), _lease(drill, "carol@tablet")
    stale = bob._read()  # bob reads the expired lease ...
    carol.acquire()  # ... carol takes it over first ...
    real_read = bob._read
    reads = iter([stale])
    monkeypatch.setattr(bob, "_read", lambda: next(reads, None) or real_read())

    with pytest.raises(Conflict, match=r"^order-service is being rolled back by carol@tablet since"):
        bob.acquire()  # ... so bob's update, made against what he read, is refused by the server

    assert ("PUT", f"/apis/coordination.k8s.io/v1/namespaces/shop/leases/{LEASE}", 409) in drill.server.requests
    assert _world_lease(drill)["spec"]["holderIdentity"] == "carol@tablet"


def test_lease_names_are_valid_object_names():
    assert lease_name("order-service") == LEASE
    assert lease_name("Orders_API v2") == "rollback-console-orders-api-v2"


# --- through the Session ---------------------------------------------------------------


def test_second_console_does_not_roll_back_while_the_first_does(drills, tmp_path):
    drill = drills()
    alice = _session(drill, tmp_path, "alice@laptop")
    bob = _session(drill, tmp_path, "bob@desk")

    running = alice.execute(alice.plan_rollback("order-service"), reason="error rate 8 %", timeout=900)
    first = next(running)  # alice's rollback is under way and holds the lease
    assert first.message == "deployment.apps/order-service rolled back"
    holder = bob.lease_holder("order-service")
    assert holder is not None and holder.holder == "alice@laptop" and holder.acquired is not None

    with pytest.raises(Conflict) as caught:
        list(bob.execute(bob.plan_rollback("order-service", to_revision=1)))
    assert HELD.match(str(caught.value)), str(caught.value)
    assert _image(drill).endswith(":1.2.2")  # bob changed nothing
    bob_events = bob.events("order-service")
    assert any(e.kind == "note" and "rollback not started: order-service is being rolled back by alice" in e.text
               for e in bob_events)
    assert not any(e.kind == incidents.ROLLBACK_STARTED for e in bob_events)

    rest = list(running)
    assert rest[-1].done and not rest[-1].failed
    assert _world_lease(drill) is None and bob.lease_holder("order-service") is None

    done = list(bob.execute(bob.plan_rollback("order-service", to_revision=1), timeout=900))
    assert done[-1].done and not done[-1].failed
    assert _image(drill).endswith(":1.2.1")


def test_rollout_that_never_becomes_ready_fails_through_the_session(drills, tmp_path):
    drill = drills()
    from kubernetes import client, config

    apps = client.AppsV1Api(config.new_client_from_config(str(drill.kubeconfig_path)))
    for version in ("9.9.9-missing", "1.2.3"):  # revision 4 cannot be pulled
        apps.patch_namespaced_deployment(
            "order-service", "shop",
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": f"registry.example.com/order-service:{version}"}]}}}},
        )
    session = _session(drill, tmp_path, "alice@laptop")

    steps = []
    for step in session.execute(session.plan_rollback("order-service", to_revision=4), timeout=3600):
        steps.append(step)
        if not step.done:
            drill.world.clock.advance(700)  # past progressDeadlineSeconds (600)

    assert steps[-1].failed and steps[-1].message == 'deployment "order-service" exceeded its progress deadline'
    events = session.events("order-service")
    assert [e.kind for e in events if e.kind.startswith("rollback.")][-1] == incidents.ROLLBACK_FAILED
    assert _world_lease(drill) is None  # released even though the rollback failed


def test_forbidden_lease_stops_the_rollback_before_any_change(drills, tmp_path):
    drill = drills()
    drill.server.kube.forbid("create", "leases")
    session = _session(drill, tmp_path, "alice@laptop")

    with pytest.raises(Forbidden) as caught:
        list(session.execute(session.plan_rollback("order-service")))

    assert str(caught.value) == (
        'Kubernetes refused to create leases "rollback-console-order-service" in namespace "shop" '
        "(Forbidden): your credentials lack that permission; ask a cluster admin or use a context that has it."
    )
    assert _image(drill).endswith(":1.2.3")


def test_forbidden_rollback_patch_is_a_sentence_and_the_lease_is_released(drills, tmp_path):
    drill = drills()
    drill.server.kube.forbid("patch", "deployments")
    session = _session(drill, tmp_path, "alice@laptop")

    with pytest.raises(Forbidden, match=r'^Kubernetes refused to patch deployments "order-service" in namespace "shop"'):
        list(session.execute(session.plan_rollback("order-service")))

    assert _world_lease(drill) is None
    failed = [e for e in session.events("order-service") if e.kind == incidents.ROLLBACK_FAILED]
    assert failed and "(Forbidden)" in failed[-1].text


def test_two_clusters_in_one_config(drills, tmp_path):
    east, west = drills("bad-deploy"), drills("blue-green")
    # One kubeconfig file with two contexts, as `kubectl config view --flatten` of two clusters gives.
    merged = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for name, drill in (("east", east), ("west", west)):
        kube = yaml.safe_load(drill.kubeconfig_path.read_text())
        merged["clusters"].append({"name": name, "cluster": kube["clusters"][0]["cluster"]})
        merged["users"].append({"name": f"{name}-user", "user": kube["users"][0]["user"]})
        merged["contexts"].append({"name": name, "context": {"cluster": name, "user": f"{name}-user"}})
    merged["current-context"] = "east"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(merged))
    data = {
        "clusters": {
            "east": {"kubeconfig": str(kubeconfig), "context": "east"},
            "west": {"kubeconfig": str(kubeconfig), "context": "west"},
            "west-file": {"kubeconfig": str(west.kubeconfig_path)},
        },
        "services": [
            {"name": "order-service", "platform": "kubernetes", "cluster": "east", "namespace": "shop"},
            {"name": "checkout", "platform": "blue-green", "cluster": "west", "namespace": "shop"},
            {"name": "checkout-again", "platform": "blue-green", "cluster": "west-file", "namespace": "shop",
             "service": "checkout", "colours": {"blue": "checkout-blue", "green": "checkout-green"}},
        ],
    }
    session = Session(parse(data), Store(tmp_path / "db"), clock=east.world.clock, operator="alice@laptop")

    assert [r.versions for r in session.platform("order-service").history()][0] == ("1.2.3",)
    assert session.surroundings("checkout").routing.active == "green"
    assert session.surroundings("checkout-again").routing.active == "green"
    assert session.surroundings("order-service").routing is None

    steps = list(session.execute(session.plan_rollback("checkout")))
    assert steps[-1].done and not steps[-1].failed
    assert session.surroundings("checkout").routing.active == "blue"
    assert _image(east).endswith(":1.2.3")  # the other cluster was not touched
    assert east.server.requests and not any(r[0] == "PATCH" for r in east.server.requests)


def test_unreachable_cluster_is_a_sentence_in_the_session(drills, tmp_path):
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    drill = drills()
    data = yaml.safe_load(drill.config_path.read_text())
    kube = yaml.safe_load(drill.kubeconfig_path.read_text())
    kube["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{port}"
    (tmp_path / "dead").write_text(yaml.safe_dump(kube))
    data["clusters"]["drill"]["kubeconfig"] = str(tmp_path / "dead")
    session = _session(drill, tmp_path, "alice@laptop", data)

    with pytest.raises(Unavailable) as caught:
        session.plan_rollback("order-service")
    assert str(caught.value) == (
        f"Cannot reach the Kubernetes API at http://127.0.0.1:{port}: connection refused. "
        "Check the kubeconfig context and VPN."
    )
    with pytest.raises(Unavailable):
        session.lease_holder("order-service")


# --- the headless command ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "service", "check"),
    [
        ("blue-green", "checkout",
         lambda w: w.store.get("services", "shop", "checkout")["spec"]["selector"]["version"] == "blue"),
        ("canary", "search",
         lambda w: [r["weight"] for r in w.store.get("virtualservices", "shop", "search")["spec"]["http"][0]["route"]] == [100, 0]
         and w.store.get("deployments", "shop", "search-canary")["spec"]["replicas"] == 0),
    ],
)
def test_headless_rollback_switches_back_or_aborts(drills, tmp_path, scenario, service, check):
    from console.rollback import EXIT_OK, run_headless_rollback

    drill = drills(scenario)
    drill.world.clock.advance(120)  # let the bad version's error rate show in the metrics
    session = _session(drill, tmp_path, "alice@laptop")
    lines: list[str] = []

    code = run_headless_rollback(session, service, reason="drill", out=lines.append)

    assert code == EXIT_OK, "\n".join(lines)
    drill.world.advance()
    assert check(drill.world)
    assert f"Rollback of {service} complete. Service healthy." in lines
