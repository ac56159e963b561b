"""Dataclass methods compiled once, kept between runs (issue 17, first frame).

`@dataclass` writes each class's methods (`__init__`, `__repr__`, `__eq__`,
`__hash__`; a frozen class's `__setattr__` and `__delattr__`) as Python source
and compiles it with `exec`, every time the class is defined: about 0.15 ms a
method, 1.2 ms a frozen class on the bench machine. Before its first frame
the console defines 55 dataclasses and Textual 42 more: 60-90 ms of compiling
the same texts as at the last start, the largest single cost of start-up that
is the console's own.

`install()` gives the `dataclasses` module an `exec` that looks each text up
in a file of code compiled at an earlier start, the way the interpreter keeps
a module's code in its `.pyc`: the same text compiled the same way (file name
"<string>", no inherited `__future__` flags), so the classes are exactly what
`dataclasses` makes without it. A text not in the file is compiled as before
and `save()` (at exit) adds it. The file's name carries the interpreter's
bytecode magic number, so another Python never reads it.

The file lives in the user's cache directory. A file that is not the user's
own, is writable by others, is too large, or does not hold what `save()`
writes is ignored (and replaced at the next save): start-up is never worse
than without it. Nothing here is needed for correctness; `ROLLBACK_CONSOLE_NO_CODE_CACHE=1`
turns it off.
"""

from __future__ import annotations

import builtins
import importlib.util
import marshal
import os
import stat
import sys
from pathlib import Path
from types import CodeType

from console.locations import cache_dir, ensure_parent

DISABLE_ENV = "ROLLBACK_CONSOLE_NO_CODE_CACHE"
MAX_BYTES = 8 * 1024 * 1024
"""A larger file is not this cache's (the console's own is about 0.5 MB)."""

_codes: dict[str, CodeType] = {}
"""What the file held at start-up, then released (`release`) once the classes are made."""
_new: dict[str, CodeType] = {}
"""Texts compiled in this run, which `save` adds to the file."""
_path: Path | None = None


def default_path() -> Path:
    """The cache file for this interpreter: its bytecode magic number in the name."""
    return cache_dir() / f"dataclass-methods-{sys.implementation.cache_tag}-{importlib.util.MAGIC_NUMBER.hex()}.marshal"


def _compiled(source: str) -> CodeType:
    code = _codes.get(source) or _new.get(source)
    if code is None:
        # As `exec(source)` from dataclasses.py compiles it: that module has no __future__ imports.
        code = _new[source] = compile(source, "<string>", "exec", dont_inherit=True)
    return code


def _exec(source, globals=None, locals=None, /):  # noqa: A002 - exec's own signature
    """`exec` for the dataclasses module: a text it compiled before runs from its code."""
    if isinstance(source, str):
        source = _compiled(source)
    return builtins.exec(source, globals, locals)


def _read(path: Path) -> dict[str, CodeType]:
    """The file's texts and code; empty when there is none or it is not to be trusted."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or info.st_size > MAX_BYTES):
            return {}
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError:
        return {}
    finally:
        os.close(fd)
    try:
        codes = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return {}
    if not isinstance(codes, dict) or not all(isinstance(k, str) and isinstance(v, CodeType) for k, v in codes.items()):
        return {}
    return codes


def install(path: Path | None = None) -> bool:
    """Compile dataclass methods through the cache from now on (before the
    modules that define dataclasses are imported). False when it is turned off."""
    global _path
    if os.environ.get(DISABLE_ENV):
        return False
    _path = path or default_path()
    _codes.update(_read(_path))
    import dataclasses

    dataclasses.exec = _exec  # type: ignore[attr-defined]  # found before the builtin
    return True


def release() -> None:
    """Drop the code read from the file (a few hundred KB): the classes it was
    for are made. Later ones compile as before; `save` still adds them."""
    _codes.clear()


def save() -> None:
    """Add this run's new texts to the file (written whole, then renamed into
    place: another console starting meanwhile reads the old file or the new)."""
    if _path is None or not _new:
        return
    codes = _read(_path)
    if codes.keys() >= _new.keys():  # another console kept them already
        _new.clear()
        return
    codes.update(_new)
    temporary = _path.with_name(f"{_path.name}.{os.getpid()}.tmp")
    try:
        ensure_parent(_path)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(marshal.dumps(codes))
        os.replace(temporary, _path)
    except OSError:  # a read-only or full disk: the next start compiles them again
        try:
            temporary.unlink()
        except OSError:
            pass
        return
    _new.clear()
