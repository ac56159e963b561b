"""The slim `kubernetes` package (console/platforms/kube_client.py): the
adapter's imports work, the same classes come back, and no generated model
is loaded until something asks for one. Each case runs in a fresh
interpreter: `slim()` only acts before anything imported `kubernetes`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("kubernetes")


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_adapters_imports_load_no_generated_model() -> None:
    out = _run("""
        import sys
        from console.platforms.kube_client import slim
        assert slim()
        from kubernetes import config, watch
        from kubernetes.client import ApiClient, AppsV1Api, Configuration, CoreV1Api
        from kubernetes.client.exceptions import ApiException
        client = ApiClient(configuration=type.__call__(Configuration))
        AppsV1Api(client), CoreV1Api(client)
        print(sum(1 for m in sys.modules if m.startswith("kubernetes.client.models.")))
    """)
    assert out == "0"


def test_only_the_api_classes_asked_for_are_loaded() -> None:
    out = _run("""
        import sys
        from console.platforms.kube_client import slim
        slim()
        from kubernetes.client import AppsV1Api, CoreV1Api
        import kubernetes.client.api.apps_v1_api as module
        from kubernetes.client import api
        assert AppsV1Api is module.AppsV1Api is api.AppsV1Api
        assert api.BatchV1Api.__name__ == "BatchV1Api"  # any other still imports on first use
        print(sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("kubernetes.client.api.")))
    """)
    assert out == "['apps_v1_api', 'batch_v1_api', 'core_v1_api']"


def test_a_model_asked_for_is_the_real_class() -> None:
    out = _run("""
        from console.platforms.kube_client import slim
        slim()
        from kubernetes import client
        import kubernetes.client.models.v1_deployment as module
        assert client.V1Deployment is module.V1Deployment
        assert client.models.V1Pod.__name__ == "V1Pod"
        import kubernetes
        print(kubernetes.__version__ == client.__version__, hasattr(client, "no_such_name"))
    """)
    assert out == "True False"


def test_after_a_full_import_slim_changes_nothing() -> None:
    out = _run("""
        import kubernetes.client
        from console.platforms.kube_client import slim
        print(slim(), kubernetes.client.V1Deployment.__name__)
    """)
    assert out == "False V1Deployment"


# --- the imports deferred until used (kube_client._DEFERRED) ---------------------

_DEFERRED_TOPS = ("requests", "oauthlib", "requests_oauthlib", "dateutil", "charset_normalizer", "certifi")


def test_loading_a_kubeconfig_imports_no_requests_or_oauthlib(tmp_path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    out = _run(f"""
        import sys
        from console.platforms.kube_client import slim
        slim()
        from kubernetes import config
        from kubernetes.client import ApiClient, AppsV1Api, Configuration
        configuration = type.__call__(Configuration)
        config.load_kube_config(config_file={str(kubeconfig)!r}, client_configuration=configuration, persist_config=False)
        AppsV1Api(ApiClient(configuration=configuration))
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({_DEFERRED_TOPS!r}))
        print(loaded, "multiprocessing.pool" in sys.modules, configuration.api_key["BearerToken"])
        # Imported now by someone else: the real packages, no stand-in left behind.
        import requests.utils, oauthlib.oauth2, requests_oauthlib, dateutil.parser, multiprocessing.pool
        print(all(getattr(sys.modules[m], "__file__", None) for m in
                  ("requests.utils", "oauthlib", "oauthlib.oauth2", "requests_oauthlib", "dateutil.parser", "multiprocessing.pool")),
              requests.utils.should_bypass_proxies.__module__, oauthlib.oauth2.__name__)
    """)
    assert out.splitlines() == ["[] False Bearer t", "True requests.utils oauthlib.oauth2"]


def test_the_deferred_names_are_the_real_ones_when_used() -> None:
    out = _run("""
        import datetime
        from console.platforms.kube_client import slim
        slim()
        from kubernetes import config  # noqa: F401
        from kubernetes.client import ApiClient, Configuration
        import kubernetes.config.kube_config as kube_config
        import kubernetes.client.rest as rest
        import kubernetes.client.api_client as api_client
        session = kube_config.OAuth2Session(client_id="console")
        import requests_oauthlib, oauthlib.oauth2.rfc6749.errors as errors, multiprocessing.pool
        print(type(session) is requests_oauthlib.OAuth2Session,
              kube_config.oauthlib.oauth2.rfc6749.errors.InvalidClientIdError is errors.InvalidClientIdError,
              hasattr(kube_config.oauthlib, "no_such_name"))
        print(rest.should_bypass_proxies("http://127.0.0.1:8080/api", no_proxy="127.0.0.1"),
              rest.should_bypass_proxies("http://10.1.2.3:8080/api", no_proxy="127.0.0.1"))
        print(api_client.parse("2026-12-05T03:00:00Z") == datetime.datetime(2026, 12, 5, 3, tzinfo=datetime.timezone.utc))
        client = ApiClient(configuration=type.__call__(Configuration))
        print(type(client.pool) is multiprocessing.pool.ThreadPool, client.pool.apply_async(sum, ([1, 2],)).get(timeout=30))
        client.close()
    """)
    assert out.splitlines() == ["True True False", "True False", "True", "True 3"]
