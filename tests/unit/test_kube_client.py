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
