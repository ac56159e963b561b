"""The TLS context of the refresh cycle's HTTPS requests (health checks, Prometheus).

aiohttp builds two TLS contexts when it is imported, each loading the
system's CA bundle: about 45 ms of the refresh process's first cycle, which
the console's first frame waits for, and 3 MB it holds (issue 17). The
refresh process imports it inside `without_default_certs`, with the CA
locations pointed nowhere, so those two hold no CA; every HTTPS request of
the console passes a context of its own instead (`for_url`), built from the
system's CA bundle (or `SSL_CERT_FILE`/`SSL_CERT_DIR`, as OpenSSL reads
them) the first time an https:// URL is asked for. A request that passed
none would fail verification: closed, never unverified.
"""

from __future__ import annotations

import os
import ssl
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_verified: ssl.SSLContext | None = None

_LOCATIONS = ("SSL_CERT_FILE", "SSL_CERT_DIR")


def verified_context() -> ssl.SSLContext:
    """The system's CA bundle, loaded once (the cost aiohttp's import no longer pays)."""
    global _verified
    with _lock:
        if _verified is None:
            context = ssl.create_default_context()
            context.set_alpn_protocols(("http/1.1",))
            _verified = context
        return _verified


def for_url(url: str) -> ssl.SSLContext | bool:
    """What to pass as aiohttp's `ssl=` for `url`: the verified context for
    https, True (aiohttp's default, unused for plain http) otherwise."""
    return verified_context() if url[:6].lower() == "https:" else True


@contextmanager
def without_default_certs() -> Iterator[None]:
    """Import aiohttp in here to skip its import-time CA loading (see the
    module's docstring). It changes the environment for a moment, so only a
    process running one thread may use it (the refresh process, before its
    first cycle); elsewhere it does nothing: a subprocess started by another
    thread meanwhile would inherit the empty CA locations."""
    if threading.active_count() > 1:
        yield
        return
    saved = {name: os.environ[name] for name in _LOCATIONS if name in os.environ}
    nowhere = os.path.join(os.sep, "nonexistent", "rollback-console")
    os.environ.update(dict.fromkeys(_LOCATIONS, nowhere))
    try:
        yield
    finally:
        for name in _LOCATIONS:
            os.environ.pop(name, None)
        os.environ.update(saved)
