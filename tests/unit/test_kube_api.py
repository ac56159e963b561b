"""The Kubernetes REST layer, called directly on a store populated by hand.

kubectl and the Python client against the real drill server are in
tests/integration/test_kubectl.py; these pin the wire details they rely on.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from console.clock import FrozenClock
from console.drill.kube_api import (
    KubeApi,
    Response,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    format_endpoints,
    human_duration,
)
from console.drill.objects import RETAINED_EVENTS, ObjectStore

START = datetime(2024, 1, 17, 14, 43, tzinfo=timezone.utc)
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


class StoreOnlyWorld:
    """The slice of the drill world KubeApi uses, without controllers."""

    def __init__(self) -> None:
        self.clock = FrozenClock(START)
        self.store = ObjectStore(self.clock.now)
        self.advanced = 0

    def advance(self) -> None:
        self.advanced += 1

    def pod_log(self, namespace: str, pod: str, container: str, tail_lines: int | None) -> str:
        return "".join(f"{pod}/{container} line {i}\n" for i in range(100))


def template(version: str) -> dict:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": f"reg/web:{version}", "env": [{"name": "A", "value": "1"}]}]},
    }


@pytest.fixture
def world() -> StoreOnlyWorld:
    world = StoreOnlyWorld()
    store = world.store
    store.create("deployments", "shop", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template("2")},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    })
    store.create("services", "shop", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web", "version": "green"}, "ports": [{"port": 80, "protocol": "TCP"}],
                 "clusterIP": "10.96.0.1", "type": "ClusterIP"},
    })
    store.create("endpoints", "shop", {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)], "ports": [{"port": 8080}]}],
    })
    store.create("pods", "shop", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "reg/web:2"}], "nodeName": "node-1"},
        "status": {"phase": "Running", "podIP": "10.0.0.1",
                   "containerStatuses": [{"name": "app", "ready": True, "restartCount": 1}]},
    })
    store.create("virtualservices", "shop", {
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "web"},
        "spec": {"hosts": ["web"], "http": [{"route": [
            {"destination": {"host": "web", "subset": "stable"}, "weight": 80},
            {"destination": {"host": "web", "subset": "canary"}, "weight": 20},
        ]}]},
    })
    world.clock.advance(150)
    return world


@pytest.fixture
def api(world: StoreOnlyWorld) -> KubeApi:
    return KubeApi(world)


def call(api: KubeApi, method: str, path: str, body: object = None, *, query: dict | None = None,
         accept: str = "application/json", content_type: str = "application/json") -> tuple[int, object]:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    response = api.handle(method, path, {k: [v] for k, v in (query or {}).items()},
                          {"Accept": accept, "Content-Type": content_type}, raw)
    assert response.stream is None
    text = (response.body or b"").decode()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


DEPLOY = "/apis/apps/v1/namespaces/shop/deployments/web"


def test_legacy_discovery_lists_resources_with_short_names(api: KubeApi) -> None:
    status, groups = call(api, "GET", "/apis")
    assert status == 200 and groups["kind"] == "APIGroupList"
    istio = next(g for g in groups["groups"] if g["name"] == "networking.istio.io")
    assert {v["version"] for v in istio["versions"]} == {"v1", "v1beta1"}
    _, apps = call(api, "GET", "/apis/apps/v1")
    by_name = {r["name"]: r for r in apps["resources"]}
    assert by_name["deployments"]["shortNames"] == ["deploy"]
    assert by_name["deployments/scale"]["kind"] == "Scale" and by_name["deployments/scale"]["group"] == "autoscaling"
    _, core = call(api, "GET", "/api/v1")
    assert {"po", "svc", "ep"} <= {s for r in core["resources"] for s in r.get("shortNames", [])}
    assert "pods/log" in {r["name"] for r in core["resources"]}
    _, versions = call(api, "GET", "/api", accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")
    assert versions["versions"] == ["v1"]


def test_deployment_table_has_wide_columns_and_metadata(api: KubeApi) -> None:
    status, table = call(api, "GET", "/apis/apps/v1/namespaces/shop/deployments", accept=TABLE)
    assert status == 200 and table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]
    assert [c["priority"] for c in table["columnDefinitions"]][-3:] == [1, 1, 1]
    row = table["rows"][0]
    assert row["cells"] == ["web", "2/3", 3, 2, "2m30s", "app", "reg/web:2", "app=web"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "web"
    _, full = call(api, "GET", DEPLOY, accept=TABLE, query={"includeObject": "Object"})
    assert full["rows"][0]["object"]["spec"]["replicas"] == 3


def test_pod_and_endpoint_cells(api: KubeApi) -> None:
    _, pods = call(api, "GET", "/api/v1/namespaces/shop/pods", accept=TABLE, query={"labelSelector": "app=web"})
    assert pods["rows"][0]["cells"][:6] == ["web-1", "1/1", "Running", 1, "2m30s", "10.0.0.1"]
    _, endpoints = call(api, "GET", "/api/v1/namespaces/shop/endpoints/web", accept=TABLE)
    assert endpoints["rows"][0]["cells"][1] == "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more..."


def test_errors_are_status_objects(api: KubeApi) -> None:
    status, body = call(api, "GET", "/apis/apps/v1/namespaces/shop/deployments/missing")
    assert status == 404
    assert body["kind"] == "Status" and body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "missing" not found'
    status, body = call(api, "GET", "/apis/apps/v1/namespaces/shop/widgets")
    assert status == 404
    status, body = call(api, "GET", "/api/v1/namespaces/shop/pods", query={"labelSelector": "app=(x"})
    assert status == 400 and body["reason"] == "BadRequest"


def test_json_patch_test_failure_is_invalid(api: KubeApi, world: StoreOnlyWorld) -> None:
    current = world.store.get("deployments", "shop", "web")["metadata"]["resourceVersion"]
    patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
             {"op": "replace", "path": "/spec/replicas", "value": 0}]
    status, body = call(api, "PATCH", DEPLOY, patch, content_type="application/json-patch+json")
    assert status == 422
    assert body["reason"] == "Invalid"
    assert body["message"] == "the server rejected our request due to an error in our request"
    assert world.store.get("deployments", "shop", "web")["spec"]["replicas"] == 3
    patch[0]["value"] = current
    status, body = call(api, "PATCH", DEPLOY, patch, content_type="application/json-patch+json")
    assert status == 200 and body["spec"]["replicas"] == 0
    assert world.advanced > 0


def test_rollback_patch_from_kubectl_is_normalised(api: KubeApi, world: StoreOnlyWorld) -> None:
    # The shape `kubectl rollout undo` sends: a Go-serialised template.
    old = template("1")
    old["metadata"]["creationTimestamp"] = None
    old["spec"]["containers"][0]["resources"] = {}
    patch = [{"op": "replace", "path": "/spec/template", "value": old},
             {"op": "replace", "path": "/metadata/annotations",
              "value": {"deployment.kubernetes.io/revision": "2"}}]
    status, body = call(api, "PATCH", DEPLOY, patch, content_type="application/json-patch+json")
    assert status == 200
    assert "creationTimestamp" not in body["spec"]["template"]["metadata"]
    assert body["metadata"]["generation"] == 2
    # Status belongs to the controller: a main-resource patch keeps it.
    assert body["status"]["readyReplicas"] == 2


def test_strategic_patch_merges_containers_by_name(api: KubeApi) -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"name": "app", "image": "reg/web:3"}],
    }}}}
    status, body = call(api, "PATCH", DEPLOY, patch, content_type="application/strategic-merge-patch+json")
    assert status == 200
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "reg/web:3"
    assert container["env"] == [{"name": "A", "value": "1"}]


def test_strategic_patch_is_refused_for_custom_resources(api: KubeApi) -> None:
    path = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/web"
    status, body = call(api, "PATCH", path, {"spec": {}}, content_type="application/strategic-merge-patch+json")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


def test_merge_patch_on_virtual_service_in_both_versions(api: KubeApi, world: StoreOnlyWorld) -> None:
    route = {"spec": {"http": [{"route": [
        {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
        {"destination": {"host": "web", "subset": "canary"}, "weight": 0},
    ]}]}}
    for version in ("v1beta1", "v1"):
        path = f"/apis/networking.istio.io/{version}/namespaces/shop/virtualservices/web"
        status, body = call(api, "PATCH", path, route, content_type="application/merge-patch+json")
        assert status == 200 and body["apiVersion"] == f"networking.istio.io/{version}"
    weights = [r["weight"] for r in world.store.get("virtualservices", "shop", "web")["spec"]["http"][0]["route"]]
    assert weights == [100, 0]


def test_service_selector_patch(api: KubeApi, world: StoreOnlyWorld) -> None:
    status, _ = call(api, "PATCH", "/api/v1/namespaces/shop/services/web",
                     {"spec": {"selector": {"version": "blue"}}},
                     content_type="application/strategic-merge-patch+json")
    assert status == 200
    assert world.store.get("services", "shop", "web")["spec"]["selector"] == {"app": "web", "version": "blue"}


def test_scale_subresource(api: KubeApi, world: StoreOnlyWorld) -> None:
    status, scale = call(api, "GET", DEPLOY + "/scale")
    assert status == 200 and scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 3 and scale["status"]["selector"] == "app=web"
    status, scale = call(api, "PATCH", DEPLOY + "/scale", {"spec": {"replicas": 0}},
                         content_type="application/merge-patch+json")
    assert status == 200 and scale["spec"]["replicas"] == 0
    assert world.store.get("deployments", "shop", "web")["spec"]["replicas"] == 0
    status, body = call(api, "PATCH", DEPLOY + "/scale", {"spec": {"replicas": -1}},
                        content_type="application/merge-patch+json")
    assert status == 422 and body["reason"] == "Invalid"


def test_put_with_stale_version_conflicts(api: KubeApi, world: StoreOnlyWorld) -> None:
    _, lease = call(api, "POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases",
                    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": "lock"}, "spec": {"holderIdentity": "alice"}})
    lease["spec"]["holderIdentity"] = "bob"
    path = "/apis/coordination.k8s.io/v1/namespaces/shop/leases/lock"
    status, updated = call(api, "PUT", path, lease)
    assert status == 200 and updated["spec"]["holderIdentity"] == "bob"
    status, body = call(api, "PUT", path, lease)
    assert status == 409 and body["reason"] == "Conflict"
    status, body = call(api, "POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", lease)
    assert status == 409 and body["reason"] == "AlreadyExists"
    status, _ = call(api, "DELETE", path)
    assert status == 200
    assert call(api, "GET", path)[0] == 404


def test_invalid_deployment_is_refused(api: KubeApi) -> None:
    status, body = call(api, "PATCH", DEPLOY, {"spec": {"selector": {"matchLabels": {"app": "other"}}}},
                        content_type="application/merge-patch+json")
    assert status == 422
    assert "field is immutable" in body["message"]


def test_pod_log_tail(api: KubeApi) -> None:
    status, text = call(api, "GET", "/api/v1/namespaces/shop/pods/web-1/log", query={"tailLines": "2"})
    assert status == 200
    assert text == "web-1/app line 98\nweb-1/app line 99\n"
    status, body = call(api, "GET", "/api/v1/namespaces/shop/pods/web-1/log", query={"container": "nope"})
    assert status == 400


def read_events(response: Response, count: int) -> list[dict]:
    assert response.stream is not None
    events = []
    for chunk in response.stream:
        events.append(json.loads(chunk))
        if len(events) == count:
            break
    response.stream.close()
    return events


def test_watch_from_version(api: KubeApi, world: StoreOnlyWorld) -> None:
    _, listed = call(api, "GET", "/apis/apps/v1/namespaces/shop/deployments")
    version = listed["metadata"]["resourceVersion"]
    deployment = world.store.get("deployments", "shop", "web")
    deployment["spec"]["replicas"] = 5
    world.store.update("deployments", "shop", deployment)
    response = api.handle("GET", "/apis/apps/v1/namespaces/shop/deployments",
                          {"watch": ["true"], "resourceVersion": [version], "timeoutSeconds": ["5"],
                           "fieldSelector": ["metadata.name=web"]}, {}, b"")
    [event] = read_events(response, 1)
    assert event["type"] == "MODIFIED"
    assert event["object"]["spec"]["replicas"] == 5 and event["object"]["kind"] == "Deployment"


def test_watch_without_version_starts_with_current_objects(api: KubeApi) -> None:
    response = api.handle("GET", "/api/v1/namespaces/shop/pods", {"watch": ["1"], "timeoutSeconds": ["1"]}, {}, b"")
    [event] = read_events(response, 1)
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "web-1"


def test_watch_too_old_is_gone(api: KubeApi, world: StoreOnlyWorld) -> None:
    for index in range(RETAINED_EVENTS + 1):
        world.store.create("events", "shop", {"metadata": {"name": f"e{index}"}})
    response = api.handle("GET", "/api/v1/namespaces/shop/pods",
                          {"watch": ["true"], "resourceVersion": ["2"]}, {}, b"")
    [event] = read_events(response, 1)
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"


def test_streaming_list_is_refused(api: KubeApi) -> None:
    status, body = call(api, "GET", "/api/v1/namespaces/shop/pods",
                        query={"watch": "true", "sendInitialEvents": "true"})
    assert status == 422 and body["reason"] == "Invalid"


def test_cascading_delete(api: KubeApi, world: StoreOnlyWorld) -> None:
    owner = world.store.get("deployments", "shop", "web")
    world.store.create("replicasets", "shop", {
        "metadata": {"name": "web-abc", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner["metadata"]["uid"], "controller": True},
        ]},
        "spec": {"replicas": 1},
    })
    status, body = call(api, "DELETE", DEPLOY)
    assert status == 200 and body["status"] == "Success"
    assert world.store.list("replicasets", "shop")[0] == []


def test_patch_algorithms() -> None:
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    assert apply_merge_patch(doc, {"a": {"b": None, "c": [3]}, "e": 1}) == {"a": {"c": [3]}, "d": "x", "e": 1}
    assert apply_json_patch(doc, [{"op": "add", "path": "/a/c/-", "value": 3},
                                  {"op": "move", "from": "/d", "path": "/f"}]) == {"a": {"b": 1, "c": [1, 2, 3]}, "f": "x"}
    containers = {"containers": [{"name": "app", "image": "1"}, {"name": "sidecar", "image": "s"}]}
    assert apply_strategic_merge_patch(containers, {"containers": [{"name": "sidecar", "$patch": "delete"}]}) == {
        "containers": [{"name": "app", "image": "1"}]
    }
    assert apply_strategic_merge_patch(containers, {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                                                    "containers": [{"name": "app", "image": "2"}]}) == {
        "containers": [{"name": "sidecar", "image": "s"}, {"name": "app", "image": "2"}]
    }
    assert apply_strategic_merge_patch({"selector": {"a": "1", "b": "2"}},
                                       {"selector": {"$patch": "replace", "c": "3"}}) == {"selector": {"c": "3"}}


@pytest.mark.parametrize(("seconds", "text"), [
    (5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (9 * 3600, "9h"),
    (3 * 86400 + 3600, "3d1h"), (30 * 86400, "30d"),
])
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_format_endpoints_without_addresses() -> None:
    assert format_endpoints({"subsets": []}) == "<none>"
