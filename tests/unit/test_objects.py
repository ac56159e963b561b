"""The drill world's object store: versions, conflicts, selectors, watch events."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from console.clock import FrozenClock
from console.drill.objects import (
    RETAINED_EVENTS,
    AlreadyExists,
    Conflict,
    Gone,
    InvalidSelector,
    NotFound,
    ObjectStore,
    canonical_template,
    label_selector_matches,
    label_selector_string,
    parse_label_selector,
)

START = datetime(2024, 1, 17, 14, 43, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def store(clock: FrozenClock) -> ObjectStore:
    return ObjectStore(clock.now)


def pod(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": {}}


def test_create_fills_server_fields(store: ObjectStore, clock: FrozenClock) -> None:
    clock.advance(5)
    created = store.create("pods", "shop", pod("a"))
    meta = created["metadata"]
    assert meta["namespace"] == "shop"
    assert meta["uid"]
    assert meta["generation"] == 1
    assert meta["creationTimestamp"] == "2024-01-17T14:43:05Z"
    assert int(meta["resourceVersion"]) == store.resource_version


def test_generate_name_makes_unique_names(store: ObjectStore) -> None:
    names = {
        store.create("pods", "shop", {"metadata": {"generateName": "web-"}})["metadata"]["name"]
        for _ in range(20)
    }
    assert len(names) == 20
    assert all(name.startswith("web-") for name in names)


def test_create_twice_is_already_exists(store: ObjectStore) -> None:
    store.create("pods", "shop", pod("a"))
    with pytest.raises(AlreadyExists):
        store.create("pods", "shop", pod("a"))
    # The same name in another namespace is another object.
    store.create("pods", "other", pod("a"))


def test_get_returns_a_copy(store: ObjectStore) -> None:
    store.create("pods", "shop", pod("a", app="x"))
    got = store.get("pods", "shop", "a")
    got["metadata"]["labels"]["app"] = "changed"
    assert store.get("pods", "shop", "a")["metadata"]["labels"]["app"] == "x"
    with pytest.raises(NotFound):
        store.get("pods", "shop", "missing")


def test_update_with_stale_version_conflicts(store: ObjectStore) -> None:
    first = store.create("pods", "shop", pod("a"))
    second = dict(first, spec={"nodeName": "n1"})
    store.update("pods", "shop", second)
    stale = dict(first, spec={"nodeName": "n2"})
    with pytest.raises(Conflict):
        store.update("pods", "shop", stale)
    # Controllers that own the object may write without the check.
    store.update("pods", "shop", stale, check_version=False)
    assert store.get("pods", "shop", "a")["spec"] == {"nodeName": "n2"}


def test_generation_moves_with_spec_not_status(store: ObjectStore) -> None:
    obj = store.create("deployments", "shop", {"metadata": {"name": "d"}, "spec": {"replicas": 3}})
    obj["status"] = {"replicas": 3}
    obj = store.update("deployments", "shop", obj)
    assert obj["metadata"]["generation"] == 1
    obj["spec"]["replicas"] = 0
    obj = store.update("deployments", "shop", obj)
    assert obj["metadata"]["generation"] == 2


def test_noop_update_keeps_the_version(store: ObjectStore) -> None:
    obj = store.create("pods", "shop", pod("a"))
    before = store.resource_version
    assert store.update("pods", "shop", obj)["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert store.resource_version == before


def test_update_keeps_server_owned_metadata(store: ObjectStore) -> None:
    obj = store.create("pods", "shop", pod("a"))
    forged = dict(obj, metadata=dict(obj["metadata"], uid="forged", creationTimestamp="2000-01-01T00:00:00Z"))
    forged["spec"] = {"nodeName": "n"}
    updated = store.update("pods", "shop", forged)
    assert updated["metadata"]["uid"] == obj["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == obj["metadata"]["creationTimestamp"]


def test_delete_and_events(store: ObjectStore) -> None:
    start = store.resource_version
    store.create("pods", "shop", pod("a"))
    store.create("services", "shop", {"metadata": {"name": "s"}})
    store.delete("pods", "shop", "a")
    with pytest.raises(NotFound):
        store.delete("pods", "shop", "a")
    events = store.events_since(start, "pods")
    assert [event.type for event in events] == ["ADDED", "DELETED"]
    assert events[-1].resource_version == store.resource_version
    assert [event.resource for event in store.events_since(start)] == ["pods", "services", "pods"]


def test_list_sorts_and_filters(store: ObjectStore) -> None:
    store.create("pods", "shop", pod("b", app="web", version="blue"))
    store.create("pods", "shop", pod("a", app="web", version="green"))
    store.create("pods", "ops", pod("c", app="db"))
    items, version = store.list("pods")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [
        ("ops", "c"), ("shop", "a"), ("shop", "b"),
    ]
    assert version == store.resource_version
    names = lambda **kw: [i["metadata"]["name"] for i in store.list("pods", **kw)[0]]  # noqa: E731
    assert names(namespace="shop") == ["a", "b"]
    assert names(label_selector="app=web,version!=blue") == ["a"]
    assert names(label_selector="version in (blue, green)") == ["a", "b"]
    assert names(label_selector="app,!version") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.namespace!=shop") == ["c"]


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {}, True),
        ("tier notin (front,back)", {"tier": "front"}, False),
        ("tier notin (front,back)", {}, True),
        ("tier in (front)", {}, False),
        ("!tier", {"tier": "x"}, False),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selector_strings(selector: str, labels: dict, expected: bool) -> None:
    assert parse_label_selector(selector)(labels) is expected


def test_bad_selector_is_refused() -> None:
    with pytest.raises(InvalidSelector):
        parse_label_selector("app=(web")


def test_structured_selectors() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable"]}],
    }
    assert label_selector_matches(selector, {"app": "web", "track": "stable"})
    assert not label_selector_matches(selector, {"app": "web", "track": "canary"})
    assert label_selector_matches({}, {"x": "y"})
    assert not label_selector_matches(None, {"x": "y"})
    assert label_selector_string(selector) == "app=web,track in (stable)"


def test_canonical_template_ignores_hash_and_empty_values() -> None:
    stored = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "i:1"}]}}
    from_kubectl = {
        "metadata": {"creationTimestamp": None, "labels": {"app": "web", "pod-template-hash": "abc"}},
        "spec": {"containers": [{"name": "app", "image": "i:1", "resources": {}}]},
    }
    assert canonical_template(stored) == canonical_template(from_kubectl)
    other = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "i:2"}]}}
    assert canonical_template(stored) != canonical_template(other)


def test_old_versions_are_gone(store: ObjectStore) -> None:
    start = store.resource_version
    for index in range(RETAINED_EVENTS + 10):
        store.create("events", "shop", {"metadata": {"name": f"e{index}"}})
    with pytest.raises(Gone):
        store.events_since(start)
    recent = store.resource_version - 5
    assert len(store.events_since(recent)) == 5


def test_wait_for_change_wakes_on_write(store: ObjectStore) -> None:
    version = store.resource_version
    timer = threading.Timer(0.05, lambda: store.create("pods", "shop", pod("late")))
    timer.start()
    began = time.monotonic()
    store.wait_for_change(version, timeout=5)
    assert time.monotonic() - began < 2
    assert store.resource_version > version
    timer.join()


def test_wait_for_change_times_out(store: ObjectStore) -> None:
    began = time.monotonic()
    store.wait_for_change(store.resource_version, timeout=0.05)
    assert time.monotonic() - began >= 0.04
