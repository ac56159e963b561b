"""The Kubernetes client's paths whose imports the slim client defers
(console/platforms/kube_client.py `_DEFERRED`), taken for real: an OIDC
token refresh against an identity provider over HTTP (requests_oauthlib,
oauthlib, requests), and a configured proxy with and without `no_proxy`
(requests.utils.should_bypass_proxies) against the drill's API. Each case
runs in a fresh interpreter, as the console's processes do: `slim()` only
acts before anything imported `kubernetes`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

pytest.importorskip("kubernetes")


def _run(code: str, **env: str) -> str:
    """Run `code` in a fresh interpreter, without this environment's proxy settings."""
    clean = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, env={**clean, **env}
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.c2ln"


class _IdentityProvider:
    """An OpenID Connect provider's discovery document and token endpoint;
    answers `answer` to a refresh and keeps each refresh request's form."""

    def __init__(self, answer: tuple[int, dict]) -> None:
        provider = self
        self.answer = answer
        self.refreshes: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path != "/.well-known/openid-configuration":
                    return self._send(404, {})
                self._send(200, {"issuer": provider.url, "token_endpoint": f"{provider.url}/token"})

            def do_POST(self) -> None:  # noqa: N802
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                provider.refreshes.append({**{k: v[0] for k, v in form.items()}, "auth": self.headers.get("Authorization")})
                self._send(*provider.answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def identity_provider():
    provider = _IdentityProvider((200, {}))
    try:
        yield provider
    finally:
        provider.close()


def _oidc_kubeconfig(path: Path, issuer: str, id_token: str) -> Path:
    user = {
        "auth-provider": {
            "name": "oidc",
            "config": {
                "client-id": "console", "client-secret": "s3cret", "id-token": id_token,
                "refresh-token": "refresh-1", "idp-issuer-url": issuer,
            },
        }
    }
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


_LOAD = """
    import sys
    from console.platforms.kube_client import slim
    slim()
    from kubernetes import config
    from kubernetes.client import Configuration
    assert "requests_oauthlib" not in sys.modules
    configuration = type.__call__(Configuration)
    config.load_kube_config(config_file={path!r}, client_configuration=configuration, persist_config=False)
    print(configuration.api_key["BearerToken"])
"""
# oauthlib refuses a token endpoint over plain http unless told; the IdP is on 127.0.0.1.
_OIDC_ENV = {"OAUTHLIB_INSECURE_TRANSPORT": "1", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}


def test_an_expired_oidc_token_is_refreshed(identity_provider, tmp_path) -> None:
    fresh = _jwt({"sub": "operator", "exp": int(time.time()) + 3600})
    identity_provider.answer = (200, {
        "access_token": "a", "token_type": "Bearer", "expires_in": 3600, "id_token": fresh, "refresh_token": "refresh-2",
    })
    expired = _jwt({"sub": "operator", "exp": int(time.time()) - 3600})
    path = _oidc_kubeconfig(tmp_path / "kubeconfig", identity_provider.url, expired)

    out = _run(_LOAD.format(path=str(path)), **_OIDC_ENV)

    assert out == f"Bearer {fresh}"
    [refresh] = identity_provider.refreshes
    assert refresh["grant_type"] == "refresh_token" and refresh["refresh_token"] == "refresh-1"
    assert refresh["auth"] == "Basic " + base64.b64encode(b"console:s3cret").decode()


def test_a_refresh_the_provider_refuses_keeps_the_old_token(identity_provider, tmp_path) -> None:
    # oauthlib raises InvalidClientIdError for "invalid_request": the loader's
    # `except oauthlib.oauth2.rfc6749.errors.InvalidClientIdError` reads it
    # through the stand-in for `oauthlib`.
    identity_provider.answer = (400, {"error": "invalid_request"})
    expired = _jwt({"sub": "operator", "exp": int(time.time()) - 3600})
    path = _oidc_kubeconfig(tmp_path / "kubeconfig", identity_provider.url, expired)

    out = _run(_LOAD.format(path=str(path)), **_OIDC_ENV)

    assert out == f"Bearer {expired}"
    assert len(identity_provider.refreshes) == 1


_PROXIED = """
    import sys
    from console.platforms.kube_client import slim
    slim()
    from kubernetes import config
    from kubernetes.client import ApiClient, AppsV1Api, Configuration
    import urllib3
    configuration = type.__call__(Configuration)
    config.load_kube_config(config_file={path!r}, client_configuration=configuration, persist_config=False)
    configuration.proxy = {proxy!r}
    configuration.no_proxy = {no_proxy!r}
    configuration.retries = False
    assert "requests" not in sys.modules
    client = ApiClient(configuration=configuration)
    print(type(client.rest_client.pool_manager).__name__)
    try:
        names = [d.metadata.name for d in AppsV1Api(client).list_namespaced_deployment("shop", _request_timeout=10).items]
        print(sorted(names)[:1])
    except urllib3.exceptions.ProxyError as exc:
        print("ProxyError")
"""


def test_a_proxy_is_bypassed_for_a_host_in_no_proxy(drill, closed_port) -> None:
    out = _run(_PROXIED.format(path=str(drill.kubeconfig_path), proxy=f"http://127.0.0.1:{closed_port}", no_proxy="127.0.0.1"))

    assert out.splitlines() == ["PoolManager", "['order-service']"]


def test_a_proxy_is_used_for_a_host_outside_no_proxy(drill, closed_port) -> None:
    # The proxy's port is closed: the request fails at the proxy, so it went there.
    out = _run(_PROXIED.format(path=str(drill.kubeconfig_path), proxy=f"http://127.0.0.1:{closed_port}", no_proxy="10.0.0.1"))

    assert out.splitlines() == ["ProxyManager", "ProxyError"]


def test_the_refresh_reads_load_no_generated_api_nor_requests(drill) -> None:
    # What each refresh and the UI's owner read ask of a service's Deployment.
    out = _run(f"""
        import sys
        from console.platforms.kubernetes import KubernetesPlatform
        platform = KubernetesPlatform("order-service", "shop", "order-service", kubeconfig={str(drill.kubeconfig_path)!r})
        health, history = platform.observe()
        print(health.desired, [r.number for r in history], platform.owner())
        print(sorted(m for m in sys.modules if m.startswith("kubernetes.client.api.")),
              sorted({{m.split(".")[0] for m in sys.modules}} & {{"requests", "oauthlib", "requests_oauthlib", "dateutil"}}))
    """)

    assert out.splitlines() == ["3 [3, 2, 1] None", "[] []"]
