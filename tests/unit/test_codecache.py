"""console.codecache: dataclass methods compiled at an earlier start are the
same methods, the file is only trusted when it is the user's own, and a bad
file never stops the console."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from console import codecache

ROOT = Path(__file__).resolve().parents[2]

# Every dataclass the console's UI process defines, and Textual's, with a
# digest of each generated method: its code, names, constants, annotations
# and defaults. Run in a new interpreter (the cache must be in place before
# the classes are defined); prints the digests and how many texts were new.
DIGEST = r"""
import dataclasses, hashlib, json, sys
from console import launch, codecache
launch.start_up() if sys.argv[1] == "cached" else launch.pause_collector()
import console.cli, console.session, console.ui.app, textual.widgets
def digest(fn):
    code = fn.__code__
    parts = [code.co_code, repr(code.co_consts), repr(code.co_names), repr(code.co_varnames),
             repr(getattr(fn, "__annotations__", None)), repr(fn.__defaults__), repr(fn.__kwdefaults__)]
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
out = {}
for name, module in sorted(sys.modules.items()):
    if not name.startswith(("console", "textual")) or module is None:
        continue
    for value in list(vars(module).values()):
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == name:
            for method in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"):
                fn = value.__dict__.get(method)
                fn = getattr(fn, "__wrapped__", fn)  # __repr__ is wrapped by reprlib.recursive_repr
                if hasattr(fn, "__code__") and fn.__code__.co_filename == "<string>":
                    out[f"{name}.{value.__qualname__}.{method}"] = digest(fn)
new = len(codecache._new)
codecache.save()
print(json.dumps({"digests": out, "new": new}))
"""


def run(mode: str, cache_home: Path, **env: str) -> dict:
    environment = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": str(ROOT), **env}
    environment.pop(codecache.DISABLE_ENV, None)
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", DIGEST, mode], capture_output=True, text=True, env=environment,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def cache_file(cache_home: Path) -> Path:
    files = list((cache_home / "rollback-console").glob("dataclass-methods-*.marshal"))
    assert len(files) == 1, files
    return files[0]


def test_the_cached_methods_are_the_methods_dataclasses_compiles(tmp_path: Path) -> None:
    plain = run("plain", tmp_path / "unused")
    first = run("cached", tmp_path)  # compiles every text and writes them
    second = run("cached", tmp_path)  # reads every one of them
    assert len(plain["digests"]) > 90  # the console's classes and Textual's
    assert first["digests"] == plain["digests"]
    assert second["digests"] == plain["digests"]
    assert first["new"] > 300
    assert second["new"] == 0, "a second start compiled again what the first one kept"
    assert cache_file(tmp_path).stat().st_mode & 0o777 == 0o600


def test_turned_off_it_neither_reads_nor_writes(tmp_path: Path) -> None:
    out = run("cached", tmp_path, **{codecache.DISABLE_ENV: "1"})
    assert out["new"] == 0
    assert not (tmp_path / "rollback-console").exists()


@pytest.mark.parametrize("content", [b"", b"\x00garbage", b"\xe3" + b"x" * 100])
def test_a_damaged_file_is_ignored_and_replaced(tmp_path: Path, content: bytes) -> None:
    run("cached", tmp_path)
    path = cache_file(tmp_path)
    path.write_bytes(content)
    out = run("cached", tmp_path)
    assert out["new"] > 300  # compiled as if there were no file
    assert run("cached", tmp_path)["new"] == 0  # and the file written again


def test_a_file_others_may_write_is_not_trusted(tmp_path: Path) -> None:
    run("cached", tmp_path)
    path = cache_file(tmp_path)
    path.chmod(0o666)
    assert codecache._read(path) == {}
    assert run("cached", tmp_path)["new"] > 300
    path.chmod(0o600)
    assert codecache._read(path)


def test_a_file_of_other_values_is_ignored(tmp_path: Path) -> None:
    import marshal

    path = tmp_path / "cache.marshal"
    path.write_bytes(marshal.dumps({"def f(): pass": "not code"}))
    assert codecache._read(path) == {}
    path.write_bytes(marshal.dumps(["a list"]))
    assert codecache._read(path) == {}
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert codecache._read(fifo) == {}  # and does not wait for a writer


def test_the_file_is_named_for_this_interpreter() -> None:
    import importlib.util

    assert importlib.util.MAGIC_NUMBER.hex() in codecache.default_path().name
    assert sys.implementation.cache_tag in codecache.default_path().name
