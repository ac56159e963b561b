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

It also defers what three of the client's modules import at their top for a
path the console takes only in some setups (`_DEFERRED`): the kubeconfig
loader's `oauthlib` and `requests_oauthlib` (its OIDC token refresh), the REST
client's `requests.utils.should_bypass_proxies` (a configured proxy) and the
API client's `dateutil.parser.parse` and `multiprocessing.pool.ThreadPool`
(model deserialisation, `async_req`). They pull in `requests`, `oauthlib`,
`charset_normalizer`, `certifi`...: `from kubernetes import config` took 250
modules and 9.6 MB of RSS here, and now takes 58 and 1.9 MB, in each process
that loads the client. While such a module executes, each of those names is a
stand-in in `sys.modules` (only if the real one is not imported already), and
the stand-ins are removed as soon as it is done: whoever imports them later
gets the real packages. What the module keeps is the stand-in: any attribute
of it imports the real module on first use, and a name it imported with
`from X import name` is a function that imports the real one when called and
calls it (so `kube_config.OAuth2Session` is that function, not the class).
"""

from __future__ import annotations

import importlib
import importlib.machinery
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


# module of the client -> {stand-in: the names its `from stand-in import ...` takes}
_DEFERRED: dict[str, dict[str, tuple[str, ...]]] = {
    # `import oauthlib.oauth2` (its errors, read in an `except` of _refresh_oidc) and
    # `from requests_oauthlib import OAuth2Session`: both used by the OIDC refresh only.
    "kubernetes.config.kube_config": {"oauthlib": (), "oauthlib.oauth2": (), "requests_oauthlib": ("OAuth2Session",)},
    # Called only when `Configuration.proxy` is set.
    "kubernetes.client.rest": {"requests.utils": ("should_bypass_proxies",)},
    # Dates of model classes (the adapter reads raw JSON) and `async_req`'s pool.
    "kubernetes.client.api_client": {"dateutil.parser": ("parse",), "multiprocessing.pool": ("ThreadPool",)},
}
_standing: dict[str, types.ModuleType] = {}  # the stand-ins in sys.modules right now


def _real(name: str) -> types.ModuleType:
    """The real module `name`, imported now if need be (every stand-in out of the way first)."""
    with _lock:
        for standing, module in list(_standing.items()):
            if sys.modules.get(standing) is module:
                del sys.modules[standing]
        _standing.clear()
    return importlib.import_module(name)


def _on_use(module: str, name: str):
    """A function that calls `module.name`, imported on the first call."""

    def call(*args, **kwargs):
        return getattr(_real(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"`{module}.{name}`, imported when first called (console/platforms/kube_client.py)."
    return call


def _stand_in(name: str, deferred: tuple[str, ...]) -> types.ModuleType:
    """A module whose attributes come from the real `name` on first use."""
    module = types.ModuleType(name, f"Stands in for `{name}` until it is used (console/platforms/kube_client.py).")
    module.__stand_in__ = True  # type: ignore[attr-defined]

    def __getattr__(attribute: str):  # noqa: N807 - the module protocol's name (PEP 562)
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        if attribute in deferred:
            value = _on_use(name, attribute)
        else:
            real = _real(name)
            try:
                value = getattr(real, attribute)
            except AttributeError:
                try:
                    value = importlib.import_module(f"{name}.{attribute}")  # a submodule (`oauthlib.oauth2`)
                except ModuleNotFoundError:
                    raise AttributeError(f"module {name!r} has no attribute {attribute!r}") from None
        setattr(module, attribute, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return module


class _DeferringLoader(importlib.machinery.SourceFileLoader):
    """Executes the module with `_DEFERRED`'s stand-ins in sys.modules."""

    def exec_module(self, module: types.ModuleType) -> None:
        placed = {}
        with _lock:
            stand_ins = _DEFERRED[self.name]
            for name, deferred in stand_ins.items():
                top = name.partition(".")[0]
                if name in sys.modules or (top != name and top in stand_ins and top not in placed):
                    continue  # imported already (`import top.sub` binds `top`: both or neither)
                placed[name] = sys.modules[name] = _stand_in(name, deferred)
            _standing.update(placed)
        try:
            super().exec_module(module)
        finally:
            with _lock:
                for name, stand_in in placed.items():
                    if sys.modules.get(name) is stand_in:
                        del sys.modules[name]
                    _standing.pop(name, None)


class _DeferringFinder:
    """Finds `_DEFERRED`'s modules with `_DeferringLoader` (a meta path finder).
    It stays in `sys.meta_path` (a dictionary look-up per import): removing it
    could make another thread's import, walking the same list, skip a finder."""

    @staticmethod
    def find_spec(fullname: str, path=None, target=None):
        if fullname not in _DEFERRED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _DeferringLoader(spec.loader.name, spec.loader.path)
        return spec


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
        sys.meta_path.insert(0, _DeferringFinder)
        return True
