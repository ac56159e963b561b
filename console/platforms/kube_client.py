"""The `kubernetes` package without its generated models loaded up front.

`import kubernetes.client` executes the package's `__init__`, which imports
every generated API and model class (about 40 MB and half a second here),
and `import kubernetes` itself imports `dynamic`, `stream`, `utils`,
`informer`... The adapter (console/platforms/kubernetes.py) uses the API
client, the kubeconfig loader, `watch` and a few API classes, and reads
every object as raw JSON, so it never needs a model class (issue 17: peak
RSS and the first refresh).

`slim()` registers the `kubernetes`, `kubernetes.client`,
`kubernetes.client.models` and `kubernetes.client.api` packages as light modules that import each name
on first use, from the module the package's own `__init__` would have
imported it from (the same classes: nothing is copied or patched). It must
run before anything else imports `kubernetes`; after that it does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import threading
import types
from pathlib import Path

_lock = threading.Lock()
_IMPORT = re.compile(r"^from (kubernetes\.client[\w.]*) import (\w+)\s*$", re.MULTILINE)
_VERSION = re.compile(r"""^__version__ = ["']([^"']+)["']""", re.MULTILINE)


def _lazy_package(name: str, directory: Path, names: dict[str, str], version: str | None) -> types.ModuleType:
    """A package `name` over `directory` whose attributes import on first use."""
    module = types.ModuleType(name)
    module.__path__ = [str(directory)]  # submodules import from the real files
    module.__file__ = str(directory / "__init__.py")
    module.__package__ = name
    if version is not None:
        module.__version__ = version

    def __getattr__(attribute: str):  # noqa: N807 - the module protocol's name (PEP 562)
        source = names.get(attribute)
        if source is not None:
            value = getattr(importlib.import_module(source), attribute)
        else:
            try:
                value = importlib.import_module(f"{name}.{attribute}")  # a submodule
            except ModuleNotFoundError:
                raise AttributeError(f"module {name!r} has no attribute {attribute!r}") from None
        setattr(module, attribute, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    module.__dir__ = lambda: sorted(set(names) | set(module.__dict__))  # type: ignore[attr-defined]
    return module


def _names(init: Path) -> tuple[dict[str, str], str | None]:
    text = init.read_text(encoding="utf-8")
    version = _VERSION.search(text)
    return {attr: source for source, attr in _IMPORT.findall(text)}, version.group(1) if version else None


def slim() -> bool:
    """Register the light packages unless `kubernetes` is imported already
    (or not installed); True when they are (now or before) in place."""
    with _lock:
        if "kubernetes" in sys.modules:
            return getattr(sys.modules["kubernetes"], "__slim__", False)
        spec = importlib.util.find_spec("kubernetes")
        if spec is None or not spec.submodule_search_locations:
            return False
        root = Path(next(iter(spec.submodule_search_locations)))
        client_names, version = _names(root / "client" / "__init__.py")
        model_names, _ = _names(root / "client" / "models" / "__init__.py")
        api_names, _ = _names(root / "client" / "api" / "__init__.py")
        package = _lazy_package("kubernetes", root, {}, version)
        package.__slim__ = True  # type: ignore[attr-defined]
        client = _lazy_package("kubernetes.client", root / "client", client_names, version)
        models = _lazy_package("kubernetes.client.models", root / "client" / "models", model_names, version)
        # The API classes too: `kubernetes.client.api`'s `__init__` imports all ~70 generated
        # API modules (19 MB of RSS here) where the adapter uses three.
        api = _lazy_package("kubernetes.client.api", root / "client" / "api", api_names, version)
        client.models = models  # type: ignore[attr-defined]
        client.api = api  # type: ignore[attr-defined]
        package.client = client  # type: ignore[attr-defined]
        sys.modules.update(
            {"kubernetes": package, "kubernetes.client": client, "kubernetes.client.models": models, "kubernetes.client.api": api}
        )
        return True
