"""Docker Compose: the runbook's Docker Compose procedure, run for real.

    1. Update docker-compose.yml to the previous version (only the `image:` line)
    2. docker compose pull SERVICE
    3. docker compose up -d SERVICE
    4. docker compose ps; docker compose logs SERVICE --tail=50

and its quick rollback (keep previous running): `docker compose up -d --scale
SERVICE=0 SERVICE`, then `docker start SERVICE_previous_container`.

Every command is an argv list (no shell) with a timeout; what it printed goes
into the Progress lines, so the session puts it in the incident timeline.

The compose file edit is a splice of one YAML scalar: ruamel.yaml's round-trip
loader finds the exact line and column of the service's `image:` value, that
value alone is replaced in the original text, and the result is parsed again
and compared with the original document, which must differ in that one value
only. Comments, key order, quoting, indentation and line endings are kept
byte for byte (ruamel's dumper would re-indent some layouts). A file the
splice cannot edit safely (the image from a `${VARIABLE}`, an alias or a merge
key) is refused with a sentence instead of rewritten.

History merges four sources, so an operator who installs the console during
the incident still has a previous version: the compose file's git history
(`git log -p` of the file, when it is in a repository), the repository's
images on the engine (with their creation times), the registry's
`/v2/REPO/tags/list` when one is configured (anonymous, or with the Docker
config's credentials), and the tags the console saw running (a small JSON
file in the console's state dir, `compose-images.json`, which also records
the tags a rollback went away from). Revision numbers rank the tags by
version (1.2.1 < 1.2.2 < 1.2.3 < 1.10.0; tags that are not versions, like
`latest`, rank lowest). The previous version is picked by the best evidence
(`pick_previous`: git history order, then the console's record, then image
creation time, then the registry's version order), never one rolled back
from; the plan carries every candidate with its provenance
(`RollbackPlan.candidates`) and says which one it picked and why.

After a quick rollback the full rollback is the next step: its plan goes to
the version the previous container serves, and that container hands over
(stopped just before `up -d`, so the port is free; removed once the service
is ready).

A local image may say which migration it needs with the label
`rollback-console/schema` (model.SCHEMA_ANNOTATION), read with `docker image
inspect` once per image ID; registry-only tags carry no mark (that would take a
manifest and config fetch per tag).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from console.clock import Clock, SystemClock
from console.model import (
    SCHEMA_ANNOTATION,
    ApiCall,
    Health,
    Progress,
    Revision,
    RollbackPlan,
    TargetCandidate,
    image_tag,
)
from console.commands import DENIED, MISSING, TIMED_OUT, CommandResult, run_command
from console.platforms.base import (
    ROLLOUT_TIMEOUT,
    Conflict,
    Forbidden,
    NotFound,
    PlatformError,
    PodInfo,
    PodLogs,
    Timeout,
    Unavailable,
)

PLATFORM = "compose"
# The runbook's `docker-compose logs $SERVICE --tail=50`.
LOG_TAIL = 50
# How many lines of a command's output a progress line carries.
OUTPUT_SUMMARY_LINES = 6
# Wall seconds between two `docker compose ps` while waiting for the containers.
POLL_INTERVAL_SECONDS = 0.5
SEEN_FILE_NAME = "compose-images.json"
# History sources that mean the tag really ran here (the others only say it exists).
RAN_SOURCES = frozenset({"seen running", "running"})
# How a revision's change cause marks a tag that never ran here.
NEVER_RAN = "never seen running"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Characters of an image reference: a plain YAML scalar needs no quoting for these.
_IMAGE_CHARS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")


# --- image references -----------------------------------------------------------


def split_image(image: str) -> tuple[str, str | None]:
    """("registry:5000/app", "1.2.3") for "registry:5000/app:1.2.3"; the tag is
    None for an untagged or digest reference."""
    if "@" in image:
        return image.split("@", 1)[0], None
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, None


def registry_path(repository: str) -> str:
    """The repository's path on its registry: "app" for "registry:5000/app",
    "library/nginx" for Docker Hub's "nginx"."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return rest
    return repository if rest else f"library/{repository}"


def version_key(tag: str) -> tuple:
    """Sort key ranking tags by version: 1.2.9 < 1.2.10, "v1.3" counts as 1.3,
    a pre-release ranks below its release (1.3.0-rc1 < 1.3.0, as in semver),
    and tags that do not start with a number (latest, main) rank lowest."""
    text = tag[1:] if tag[:1] in ("v", "V") and tag[1:2].isdigit() else tag
    match = re.match(r"\d+(?:\.\d+)*", text)
    if not match:
        return (0, (), 0, text)
    release = tuple(int(p) for p in match.group(0).split("."))
    suffix = text[match.end() :]
    return (1, release, 0 if suffix else 1, suffix)


# --- the compose file -------------------------------------------------------------


@dataclass(frozen=True)
class ImageLine:
    """Where a service's `image:` value sits in the compose file's text."""

    line: int  # 0-based
    start: int  # column of the value's first character (the quote, if quoted)
    end: int  # column after the value's last character
    quote: str  # "", "'" or '"'
    image: str


def _plain(node: Any) -> Any:
    """A ruamel round-trip tree as plain dicts, lists and scalars (for comparing)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node if node is None or isinstance(node, (bool, int, float)) else str(node)


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml


def parse_compose(text: str, path: str) -> Any:
    """The compose file as a ruamel round-trip tree; PlatformError if it is not YAML."""
    from ruamel.yaml.error import YAMLError

    try:
        return _yaml().load(io.StringIO(text))
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise PlatformError(f"{path}{where} is not valid YAML ({problem}); fix the compose file and try again.") from None


def _service_node(data: Any, service: str, path: str) -> Any:
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        raise NotFound(f"{path} has no `services:` section; check compose_file in the console config.")
    if service not in services or not isinstance(services[service], dict):
        known = ", ".join(str(s) for s in services) or "none"
        raise NotFound(
            f"{path} has no service {service!r} (services: {known}); set `service:` in the console config "
            "to the compose service's key."
        )
    return services[service]


def locate_image(text: str, service: str, path: str) -> ImageLine:
    """Find `services.SERVICE.image` in the text; refuses values it cannot splice."""
    node = _service_node(parse_compose(text, path), service, path)
    lc = getattr(node, "lc", None)
    if "image" not in node:
        raise PlatformError(
            f"Service {service!r} in {path} has no `image:` (it is built with `build:`); only an image "
            "tag can be rolled back: deploy the previous build by hand."
        )
    if lc is None or "image" not in (lc.data or {}):
        raise PlatformError(
            f"The image of service {service!r} in {path} comes from a YAML merge key (`<<:`); the console "
            "edits only an `image:` line of the service itself: edit the file by hand."
        )
    image = str(node["image"])
    line, col = lc.value("image")
    lines = text.splitlines(keepends=True)
    raw = lines[line][col:] if line < len(lines) else ""
    if raw.startswith(("*", "&")):
        raise PlatformError(
            f"The image of service {service!r} in {path} is a YAML anchor or alias shared with other "
            "services; edit the file by hand so only this service changes."
        )
    if "$" in image:
        raise PlatformError(
            f"The image of service {service!r} in {path} is set through a variable ({image}); set the "
            "variable (in .env or the environment) to the previous tag instead."
        )
    quote = raw[:1] if raw[:1] in ("'", '"') else ""
    if quote:
        closing = raw.find(quote, 1)
        end = col + closing + 1 if closing > 0 else -1
        inner = raw[1:closing] if closing > 0 else ""
    else:
        # A plain scalar ends at a space or comment, and in a flow mapping at , } ].
        match = re.match(r"[^\s#,\]}]+", raw)
        end = col + match.end() if match else -1
        inner = match.group(0) if match else ""
    if end < 0 or inner != image:
        raise PlatformError(
            f"The image of service {service!r} in {path} is not a one-line value the console can edit "
            "safely; edit the file by hand."
        )
    return ImageLine(line=line, start=col, end=end, quote=quote, image=image)


def replace_image(text: str, service: str, new_image: str, path: str) -> tuple[str, ImageLine]:
    """The compose text with only SERVICE's image value replaced, checked by
    parsing it again: the documents must be equal apart from that value."""
    if not _IMAGE_CHARS.match(new_image):
        raise PlatformError(f"{new_image!r} is not an image reference the console will write into {path}.")
    where = locate_image(text, service, path)
    lines = text.splitlines(keepends=True)
    old_line = lines[where.line]
    lines[where.line] = f"{old_line[: where.start]}{where.quote}{new_image}{where.quote}{old_line[where.end :]}"
    new_text = "".join(lines)
    expected = _plain(parse_compose(text, path))
    expected["services"][service]["image"] = new_image
    if _plain(parse_compose(new_text, path)) != expected:
        raise PlatformError(
            f"Editing the image line of {path} would change more than the image; edit the file by hand."
        )
    return new_text, where


def _read_text(path: Path) -> str:
    try:
        # newline="": CRLF files stay CRLF.
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        raise NotFound(f"The compose file {path} does not exist; check compose_file in the console config.") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise PlatformError(f"Cannot read the compose file {path}: {reason}.") from None


def atomic_write(path: Path, text: str) -> None:
    """Replace the file's content in one step (a reader sees the old or the new
    file, never half of one), keeping its mode and, where allowed, its owner.
    A symlink stays a symlink: the file it points to is the one replaced."""
    path = path.resolve()
    stat = path.stat()
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, stat.st_mode & 0o7777)
        try:
            os.chown(temp, stat.st_uid, stat.st_gid)
        except OSError:
            pass  # not root: the file simply becomes ours, as with any editor
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def text_version(text: str) -> str:
    """The compose file's identity in a plan: the change is refused if it moved."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --- commands -------------------------------------------------------------------


def _clean(text: str) -> str:
    return _ANSI.sub("", text).replace("\r", "\n")


def _error_line(text: str) -> str:
    """The most telling line of a failed command's output."""
    lines = [ln.strip() for ln in _clean(text).splitlines() if ln.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or "denied" in line.lower() or "not found" in line.lower():
            return line.rstrip(".")
    return (lines[-1] if lines else "no output").rstrip(".")


def command_error(result: CommandResult, *, hint: str = "") -> PlatformError:
    """A failed command as a typed PlatformError whose sentence names the
    command, what it said, and what to do."""
    said = _error_line(result.stderr or result.stdout)
    low = (result.stderr + result.stdout).lower()
    prefix = f"`{result.display}` failed: {said}{'' if said.endswith(('?', '!')) else '.'}"
    registry = _registry_fault(low)
    if registry is not None:
        return Unavailable(
            f"{prefix} The registry {registry} is not reachable: the Docker engine answered, but its connection to "
            "the registry failed. Start the registry or fix the network to it, or roll back to a version the "
            "engine already has."
        )
    if "cannot connect to the docker daemon" in low or ("docker.sock" in low and "no such file" in low) or (
        "connection refused" in low and "error response from daemon" not in low
    ):
        return Unavailable(f"{prefix} The Docker engine is not reachable: start it, or check docker_host in the console config.")
    if "permission denied" in low and ("docker.sock" in low or "daemon socket" in low):
        return Forbidden(
            f"{prefix} You may not use the Docker socket: run the console as a user in the `docker` group."
        )
    if "is not a docker command" in low or "unknown command" in low or "unknown shorthand flag" in low:
        return Unavailable(
            f"{prefix} Compose v2 is not installed as a Docker CLI plugin: install it, or set "
            "compose_command in the console config (e.g. [docker-compose])."
        )
    if "unauthorized" in low or "authentication required" in low or "denied: " in low or "pull access denied" in low:
        return Forbidden(f"{prefix} The registry refused the credentials: `docker login` to it, then try again.")
    if "manifest unknown" in low or ("manifest for" in low and "not found" in low):
        return NotFound(
            f"{prefix} That tag is not in the registry (manifest unknown): check that it was pushed, or roll back "
            "to another version."
        )
    if "no such container" in low or "no such service" in low:
        return NotFound(f"{prefix}{' ' + hint if hint else ''}")
    return PlatformError(f"`{result.display}` failed (exit {result.returncode}): {said}.{' ' + hint if hint else ''}")


# The engine's words when it answered but could not reach a registry.
_REGISTRY_FAULTS = ("connection refused", "no such host", "i/o timeout", "connection reset", "tls:", "x509:",
                    "server gave http response to https client", "network is unreachable", "no route to host")


def _registry_fault(low: str) -> str | None:
    """The registry host when a command's (lower-cased) output says the engine
    answered but its request to a registry failed: `Error response from
    daemon: Get "http://HOST/v2/": dial tcp HOST: connect: connection refused`."""
    if "error response from daemon" not in low and "/v2/" not in low:
        return None
    if not any(fault in low for fault in _REGISTRY_FAULTS):
        return None
    match = re.search(r'https?://([^/"\s]+)/v2/', low) or re.search(r"dial tcp ([^:\s]+:\d+)", low)
    return match.group(1) if match else None


# --- containers -----------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    """One container, from `docker compose ps --format json` or `docker container inspect`."""

    name: str
    id: str
    image: str
    state: str  # running, exited, restarting, created, paused, dead
    health: str  # "", starting, healthy, unhealthy
    status: str = ""  # "Up 3 seconds (healthy)"
    created: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def ready(self) -> bool:
        """Running, and healthy when the container has a healthcheck."""
        return self.running and self.health in ("", "healthy")


def _parse_time(value: str | None) -> datetime | None:
    """Docker's timestamps: RFC 3339 ("2026-11-27T12:16:27.1234Z") or the CLI's
    "2026-11-27 12:16:27 +0000 UTC"."""
    if not value:
        return None
    text = value.strip()
    match = re.match(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(\.\d+)?\s*(Z|[+-]\d\d:?\d\d)?", text)
    if not match:
        return None
    zone = match.group(4) or "+00:00"
    zone = "+00:00" if zone == "Z" else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
    # Microseconds kept: images built in one CI run differ by less than a second.
    fraction = (match.group(3) or "")[:7]
    try:
        return datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}{fraction}{zone}").astimezone(timezone.utc)
    except ValueError:
        return None


def _json_objects(text: str) -> list[dict]:
    """Compose prints a JSON array (v2.20 and older) or one object per line (newer)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        parsed = json.loads(text)
        return [item for item in parsed if isinstance(item, dict)]
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def _labels(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str) and value:
        # `docker compose ps` renders labels as "k=v,k=v".
        return {k: v for k, _, v in (item.partition("=") for item in value.split(","))}
    return {}


def container_from_ps(item: dict) -> Container:
    return Container(
        name=str(item.get("Name") or item.get("Names") or ""),
        id=str(item.get("ID") or ""),
        image=str(item.get("Image") or ""),
        state=str(item.get("State") or "").lower(),
        health=str(item.get("Health") or "").lower(),
        status=str(item.get("Status") or ""),
        created=_parse_time(item.get("CreatedAt")),
        labels=_labels(item.get("Labels")),
    )


def container_from_inspect(item: dict) -> Container:
    state = item.get("State") or {}
    config = item.get("Config") or {}
    health = (state.get("Health") or {}).get("Status") or ""
    return Container(
        name=str(item.get("Name") or "").lstrip("/"),
        id=str(item.get("Id") or "")[:12],
        image=str(config.get("Image") or ""),
        state=str(state.get("Status") or "").lower(),
        health=str(health).lower(),
        status=str(state.get("Status") or ""),
        created=_parse_time(item.get("Created")),
        labels=_labels(config.get("Labels")),
    )


def _count_line(service: str, containers: Sequence[Container], image: str) -> str:
    """"1 of 1 order-service containers running 1.2.2 (1 healthy)"."""
    on_target = [c for c in containers if c.image == image]
    running = [c for c in on_target if c.running]
    with_check = [c for c in on_target if c.health]
    text = f"{len(running)} of {len(containers)} {service} containers running {image_tag(image)}"
    if with_check:
        healthy = sum(1 for c in with_check if c.health == "healthy")
        if healthy == len(with_check):
            text += f" ({healthy} healthy)"
        else:
            text += f" ({healthy} healthy, {len(with_check) - healthy} {_worst_health(with_check)})"
    return text


def _worst_health(containers: Sequence[Container]) -> str:
    states = {c.health for c in containers if c.health != "healthy"}
    return "unhealthy" if "unhealthy" in states else "starting" if "starting" in states else "not healthy"


# --- where previous versions come from ---------------------------------------------

# Where a version was found, as the history's change cause and a candidate's sources say.
SOURCE_GIT = "git history"
SOURCE_ENGINE = "engine"
SOURCE_REGISTRY = "registry"
SOURCE_SEEN = "seen running"
SOURCE_RUNNING = "running"
SOURCE_FILE = "compose file"
# How a revision's change cause marks a tag a rollback went away from.
ROLLED_BACK = "rolled back from"
# The state file's key suffix for the tags this console rolled back from.
ROLLED_BACK_SUFFIX = "#rolled-back-from"
# `git log -p` context: the whole compose file, so each commit's version can be rebuilt.
GIT_CONTEXT_LINES = 100000
# Commits of the compose file read (newest first): enough for any incident.
GIT_MAX_COMMITS = 200


@dataclass(frozen=True)
class GitEntry:
    """The service's image in the compose file as one commit left it."""

    commit: str  # short hash
    at: datetime | None
    image: str


def parse_git_log(output: str, service: str, path: str) -> list[GitEntry]:
    """`git log -p -U<whole file> --format=%x00commit %H %cI -- FILE` as the
    service's image at each commit (newest first). Each patch carries the whole
    file as context, so the commit's version of the file is its context and
    added lines; a version the console cannot read (not YAML, no such service,
    an image from a variable) is left out."""
    entries = []
    for chunk in output.split("\x00commit ")[1:]:
        header, _, patch = chunk.partition("\n")
        commit, _, committed = header.strip().partition(" ")
        lines, in_hunk = [], False
        for line in patch.split("\n"):
            if line.startswith("@@"):
                in_hunk = True
            elif in_hunk and line[:1] in (" ", "+"):
                lines.append(line[1:])
            # "-" lines are the version before; "\" is git's "No newline at end of file".
        if not lines:
            continue  # the commit deleted the file
        try:
            image = locate_image("\n".join(lines) + "\n", service, path).image
        except PlatformError:
            continue
        entries.append(GitEntry(commit=commit[:12], at=_parse_time(committed), image=image))
    return entries


def git_rollbacks(entries: Sequence[GitEntry]) -> dict[str, str]:
    """Images a commit moved the file away from to a lower version (a rollback
    recorded in git), each with a sentence naming the commit."""
    found: dict[str, str] = {}
    for newer, older in zip(entries, entries[1:]):
        if newer.image == older.image:
            continue
        new_key, old_key = version_key(image_tag(newer.image)), version_key(image_tag(older.image))
        if new_key[0] == old_key[0] == 1 and new_key < old_key:
            found.setdefault(
                older.image,
                f"git commit {newer.commit} moved the image from {image_tag(older.image)} back to {image_tag(newer.image)}",
            )
    return found


@dataclass
class _Evidence:
    """What one look at the service found (internal to ComposePlatform)."""

    repository: str
    file_image: str
    running: tuple[str, ...]
    serving_previous: Container | None
    sources: dict[str, set[str]] = field(default_factory=dict)
    created: dict[str, datetime | None] = field(default_factory=dict)
    engine_created: dict[str, datetime | None] = field(default_factory=dict)
    schemas: dict[str, str] = field(default_factory=dict)
    commits: dict[str, str] = field(default_factory=dict)
    rolled_back: dict[str, str] = field(default_factory=dict)
    current_tags: set[str] = field(default_factory=set)
    git: list[GitEntry] = field(default_factory=list)

    def reference_image(self) -> str:
        """The version "previous" is relative to: the newest running (else the file's)."""
        if not self.current_tags:
            return self.file_image
        return f"{self.repository}:{max(self.current_tags, key=version_key)}"

    def add(self, tag: str, source: str, at: datetime | None = None) -> None:
        self.sources.setdefault(tag, set()).add(source)
        known = self.created.get(tag)
        if at is not None and (known is None or at < known):
            self.created[tag] = at
        self.created.setdefault(tag, None)


def pick_previous(
    candidates: Sequence[TargetCandidate],
    current_image: str,
    git: Sequence[GitEntry],
    current_created: datetime | None,
) -> tuple[TargetCandidate | None, str]:
    """The previous version, by the best evidence there is, and why; never one
    rolled back from. In order:

    1. the compose file's git history: the image the file named before the
       commit that brought the current one (what was really deployed), when
       a commit did bring it;
    2. the console's own record: the newest lower version it saw running;
    3. the engine: the newest image of the repository created before the
       current one (one the registry has too, when the registry answered);
    4. the registry: the highest version below the current one.

    Returns (None, why) when no source has one."""
    usable = {c.image: c for c in candidates if not c.rolled_back_from}
    current_key = version_key(image_tag(current_image))
    # Only when a commit brought the current version does the history say what
    # came before it: a file CI edits in place may have one commit, years old.
    newest = next((i for i, e in enumerate(git) if e.image == current_image), None)
    for entry in git[newest + 1 :] if newest is not None else ():
        candidate = usable.get(entry.image)
        if candidate is not None and entry.image != current_image:
            when = f", {entry.at:%Y-%m-%d %H:%M} UTC" if entry.at else ""
            return candidate, (
                f"the compose file named it before {image_tag(current_image)} (git commit {entry.commit}{when})"
            )
    lower = [c for c in usable.values() if version_key(c.version)[0] == 1 and version_key(c.version) < current_key]
    seen = [c for c in lower if c.seen_running]
    if seen:
        best = max(seen, key=lambda c: version_key(c.version))
        return best, f"the newest version below {image_tag(current_image)} the console saw running here"
    if current_created is not None:
        older = [c for c in usable.values() if c.created is not None and c.created < current_created]
        # When the registry answered, an image it lacks (a local build) would fail the pull.
        if any(SOURCE_REGISTRY in c.sources for c in candidates):
            older = [c for c in older if SOURCE_REGISTRY in c.sources] or older
        if older:
            best = max(older, key=lambda c: (c.created, version_key(c.version)))
            return best, (
                f"the newest image on the engine created before {image_tag(current_image)} "
                f"({best.created:%Y-%m-%d %H:%M:%S} UTC)"
            )
    listed = [c for c in lower if SOURCE_REGISTRY in c.sources]
    if listed:
        best = max(listed, key=lambda c: version_key(c.version))
        return best, f"the highest version below {image_tag(current_image)} among the registry's tags"
    refused = [c.version for c in candidates if c.rolled_back_from]
    return None, (
        "neither the compose file's git history, the console's record, the engine's images nor the registry's "
        "tags show an older version" + (f" that was not rolled back from ({', '.join(refused)} was)" if refused else "")
    )


def _target_warnings(candidate: TargetCandidate | None) -> str:
    """What the plan must say about a target: never seen running, rolled back from."""
    if candidate is None:
        return ""
    text = ""
    if not candidate.seen_running and SOURCE_GIT in candidate.sources:
        text += (f" The console never saw {candidate.version} running itself; the compose file's git history says "
                 f"it was deployed (commit {candidate.commit}).")
    elif not candidate.seen_running:
        text += f" {candidate.version} was never seen running here ({', '.join(candidate.sources)}): check that it works before relying on it."
    if candidate.rolled_back_from:
        text += f" WARNING: {candidate.version} was rolled back from ({candidate.note})."
    return text


def registry_credentials(registry_url: str, config_dir: Path) -> tuple[str, str] | None:
    """User and password for the registry from the Docker CLI's config.json
    (`docker login` keeps them there, base64 "user:password" under `auths`);
    None when there are none there (a credential helper keeps them elsewhere)."""
    host = urlsplit(registry_url if "://" in registry_url else f"//{registry_url}").netloc
    try:
        data = json.loads((config_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    auths = data.get("auths") if isinstance(data, dict) else None
    for key, entry in (auths or {}).items() if isinstance(auths, dict) else ():
        if urlsplit(key if "://" in key else f"//{key}").netloc != host or not isinstance(entry, dict):
            continue
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
        try:
            user, _, password = base64.b64decode(str(entry.get("auth") or "")).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return (user, password) if user else None
    return None


def credential_helper(registry_url: str, config_dir: Path) -> str | None:
    """The Docker config's credential helper for the registry (`credHelpers`,
    else `credsStore`), whose secrets the console does not fetch."""
    host = urlsplit(registry_url if "://" in registry_url else f"//{registry_url}").netloc
    try:
        data = json.loads((config_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    helpers = data.get("credHelpers") if isinstance(data.get("credHelpers"), dict) else {}
    return str(helpers.get(host) or data.get("credsStore") or "") or None


def _bearer_token(client: Any, challenge: Any, credentials: tuple[str, str] | None, scope: str) -> str | None:
    """The registry token protocol: a 401 with `WWW-Authenticate: Bearer
    realm=...,service=...` sends the client to the token service (with the
    credentials, when there are any) for a pull token."""
    header = challenge.headers.get("www-authenticate", "")
    if not header.lower().startswith("bearer "):
        return None
    params = dict(re.findall(r'(\w+)="([^"]*)"', header))
    realm = params.get("realm")
    if not realm:
        return None
    query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
    response = client.get(realm, params=query, auth=credentials) if credentials else client.get(realm, params=query)
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("token") or body.get("access_token") or "") or None


# --- the platform -----------------------------------------------------------------


class ComposePlatform:
    """One Compose service on one engine, rolled back the runbook's way."""

    platform = PLATFORM

    def __init__(
        self,
        service: str,
        compose_file: str | os.PathLike[str],
        *,
        compose_service: str | None = None,
        project_name: str | None = None,
        compose_command: Sequence[str] = ("docker", "compose"),
        docker_command: Sequence[str] = ("docker",),
        docker_host: str | None = None,
        registry: str | None = None,
        registry_timeout: float = 5.0,
        command_timeout: float = 30.0,
        deploy_timeout: float = 600.0,
        previous_container: str | None = None,
        seen_path: str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = service
        self.compose_file = Path(compose_file)
        self.service = compose_service or service
        self.project_name = project_name
        self.compose_command = tuple(compose_command)
        self.docker_command = tuple(docker_command)
        self.docker_host = docker_host
        self.registry = registry.rstrip("/") if registry else None
        self.registry_timeout = registry_timeout
        self.command_timeout = command_timeout
        self.deploy_timeout = deploy_timeout
        self.previous_container = previous_container or f"{self.service}_previous_container"
        self._seen_path = Path(seen_path) if seen_path else None
        self._clock: Clock = clock or SystemClock()
        # Why the last history() lacks a source (the registry was unreachable ...), as sentences.
        self.warnings: tuple[str, ...] = ()
        # (HEAD, file) -> its git history, see git_history().
        self._git_cache: tuple[tuple[str, str], tuple[GitEntry, ...]] | None = None
        # Image ID -> (creation time, schema label or None), see _image_facts().
        self._facts: dict[str, tuple[datetime | None, str | None]] = {}

    @classmethod
    def from_config(cls, service: Any, clock: Clock | None = None) -> ComposePlatform:
        """Build from a `ComposeService` config entry."""
        return cls(
            service.name,
            service.compose_file,
            compose_service=service.compose_service,
            project_name=service.project_name,
            compose_command=service.compose_command,
            docker_command=service.docker_command,
            docker_host=service.docker_host,
            registry=service.registry,
            registry_timeout=service.registry_timeout,
            command_timeout=service.command_timeout,
            deploy_timeout=service.deploy_timeout,
            previous_container=service.previous_container_name,
            clock=clock,
        )

    # --- commands ----------------------------------------------------------------

    def compose_argv(self, *args: str) -> list[str]:
        """`docker compose -f FILE [-p PROJECT] ARGS...` as an argv list."""
        argv = [*self.compose_command, "-f", str(self.compose_file)]
        if self.project_name:
            argv += ["-p", self.project_name]
        return argv + list(args)

    def docker_argv(self, *args: str) -> list[str]:
        return [*self.docker_command, *args]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        # Plain progress output: no colours or cursor movement in the timeline.
        env.setdefault("NO_COLOR", "1")
        env["COMPOSE_ANSI"] = "never"
        env["COMPOSE_PROGRESS"] = "plain"
        return env

    def run(self, argv: Sequence[str], timeout: float | None = None, check: bool = True) -> CommandResult:
        """Run one command (no shell) with a timeout (the shared runner: the process group is
        killed when it passes); failures become PlatformErrors."""
        limit = self.command_timeout if timeout is None else max(1.0, timeout)
        display = shlex.join(argv)
        result = run_command(
            argv, timeout=limit, env=self._env(),
            cwd=str(self.compose_file.parent) if self.compose_file.parent.is_dir() else None,
            what="check the Docker engine (and the registry, for a pull), then try again",
        )
        if result.reason == MISSING:
            raise Unavailable(
                f"`{argv[0]}` is not installed or not on PATH (running `{display}`): install the Docker CLI, "
                "or set compose_command / docker_command in the console config."
            )
        if result.reason == DENIED:
            raise Forbidden(f"`{argv[0]}` is not executable for this user (running `{display}`).")
        if result.reason == TIMED_OUT:
            raise Timeout(result.error or f"`{display}` did not finish within {limit:g} s and was stopped.")
        result = replace(result, stdout=_clean(result.stdout), stderr=_clean(result.stderr))
        if check and result.returncode != 0:
            raise command_error(result)
        return result

    # --- reading state -----------------------------------------------------------

    def compose_image(self) -> str:
        """The image the compose file names for the service."""
        return locate_image(_read_text(self.compose_file), self.service, str(self.compose_file)).image

    def desired_replicas(self) -> int:
        """`deploy.replicas` (or the older `scale`) from the compose file; 1 by default."""
        node = _service_node(parse_compose(_read_text(self.compose_file), str(self.compose_file)), self.service, str(self.compose_file))
        deploy = node.get("deploy") if isinstance(node.get("deploy"), dict) else {}
        for value in (deploy.get("replicas"), node.get("scale")):
            if isinstance(value, int) and value >= 0:
                return value
        return 1

    def containers(self) -> list[Container]:
        """`docker compose ps -a --format json SERVICE`: the service's containers, any state."""
        result = self.run(self.compose_argv("ps", "-a", "--format", "json", self.service))
        try:
            items = _json_objects(result.stdout)
        except ValueError:
            raise PlatformError(
                f"`{result.display}` printed something that is not JSON; the console needs Compose v2 "
                "(`docker compose version` 2.x)."
            ) from None
        return sorted((container_from_ps(i) for i in items), key=lambda c: c.name)

    def previous(self) -> Container | None:
        """The container the quick rollback would start, if it exists."""
        result = self.run(self.docker_argv("container", "inspect", self.previous_container), check=False)
        if result.returncode != 0:
            if "no such" in (result.stderr + result.stdout).lower():
                return None
            raise command_error(result)
        items = _json_objects(result.stdout)
        return container_from_inspect(items[0]) if items else None

    def _previous_is_compose_managed(self, container: Container) -> bool:
        """Compose counts a container as the service's when its labels say so, and
        `--scale SERVICE=0` would then remove it along with the others."""
        labels = container.labels
        if labels.get("com.docker.compose.service") != self.service:
            return False
        project = labels.get("com.docker.compose.project")
        return self.project_name is None or project == self.project_name

    def local_tags(self, repository: str) -> dict[str, datetime | None]:
        """Tags of the repository on the engine, with their image's creation time."""
        local = self._local_images(repository)
        facts = self._image_facts([image_id for _, image_id in local.values()])
        return {tag: facts.get(image_id, (listed, None))[0] or listed for tag, (listed, image_id) in local.items()}

    def _local_images(self, repository: str) -> dict[str, tuple[datetime | None, str]]:
        """Tags of the repository on the engine -> (creation time to the second, image ID)."""
        result = self.run(self.docker_argv("image", "ls", "--format", "{{json .}}", repository))
        tags: dict[str, tuple[datetime | None, str]] = {}
        for item in _json_objects(result.stdout):
            tag = str(item.get("Tag") or "")
            if tag and tag != "<none>":
                tags[tag] = (_parse_time(item.get("CreatedAt")), str(item.get("ID") or ""))
        return tags

    def _image_facts(self, image_ids: Sequence[str]) -> dict[str, tuple[datetime | None, str | None]]:
        """Image ID -> (its creation time, the migration its `model.SCHEMA_ANNOTATION`
        label names). `docker image ls` rounds creation times to the second, too
        coarse for images built in one CI run, hence `docker image inspect`. An
        image never changes, so each ID is inspected once per console; a failed
        inspect leaves the facts out (asked again next time)."""
        unknown = [i for i in dict.fromkeys(image_ids) if i and i not in self._facts]
        if unknown:
            argv = self.docker_argv(
                "image", "inspect", "--format", "{{.Id}} {{.Created}} {{json .Config.Labels}}", *unknown
            )
            try:
                output = self.run(argv, check=False).stdout
            except PlatformError:
                output = ""
            for line in output.splitlines():
                full, _, rest = line.strip().partition(" ")
                created, _, labels = rest.partition(" ")
                try:
                    value = (json.loads(labels) or {}).get(SCHEMA_ANNOTATION)
                except (ValueError, AttributeError):
                    continue
                digest = full.split(":", 1)[-1]
                for image_id in unknown:
                    if digest.startswith(image_id.split(":", 1)[-1]):
                        schema = (str(value).strip() or None) if value else None
                        self._facts[image_id] = (_parse_time(created), schema)
        return {i: self._facts[i] for i in image_ids if i in self._facts}

    def image_schemas(self, image_ids: Sequence[str]) -> dict[str, str]:
        """Image ID -> the migration the image says it needs, for local images
        that have one (the config's database.schema_requirements still applies)."""
        return {i: schema for i, (_, schema) in self._image_facts(image_ids).items() if schema}

    def _docker_config_dir(self) -> Path:
        configured = self._env().get("DOCKER_CONFIG")
        return Path(configured) if configured else Path.home() / ".docker"

    def registry_tags(self, repository: str) -> list[str]:
        """The registry's `GET /v2/REPO/tags/list` (empty when no registry is
        configured). Anonymous, or with the user and password `docker login`
        stored in the Docker config (basic auth, or the bearer token the
        registry's token service hands out for them)."""
        if not self.registry:
            return []
        import httpx

        path = registry_path(repository)
        url = f"{self.registry}/v2/{path}/tags/list"
        credentials = registry_credentials(self.registry, self._docker_config_dir())
        try:
            with httpx.Client(timeout=self.registry_timeout, follow_redirects=True) as client:
                response = client.get(url, auth=credentials) if credentials else client.get(url)
                if response.status_code == 401:
                    token = _bearer_token(client, response, credentials, f"repository:{path}:pull")
                    if token:
                        response = client.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.TimeoutException:
            raise Timeout(f"The registry at {self.registry} did not answer within {self.registry_timeout:g} s.") from None
        except httpx.HTTPError as err:
            raise Unavailable(f"Cannot reach the registry at {self.registry} ({type(err).__name__}).") from None
        if response.status_code in (401, 403):
            if credentials:
                raise Forbidden(
                    f"The registry at {self.registry} refused the credentials in {self._docker_config_dir()}/config.json "
                    f"to list {path}: `docker login` to it again."
                )
            helper = credential_helper(self.registry, self._docker_config_dir())
            raise Forbidden(
                f"The registry at {self.registry} asks for credentials to list {path}: "
                + (f"they are kept by the credential helper docker-credential-{helper}, which the console does not "
                   "run; list the tags with `docker` or choose the target with --to-tag."
                   if helper else "`docker login` to it (the console reads the Docker config's credentials).")
            )
        if response.status_code == 404:
            return []
        if response.status_code >= 400:
            raise Unavailable(f"The registry at {self.registry} answered HTTP {response.status_code} to {url}.")
        try:
            return [str(t) for t in (response.json().get("tags") or [])]
        except (ValueError, AttributeError):
            raise Unavailable(f"The registry at {self.registry} answered {url} with something that is not a tag list.") from None

    def git_history(self) -> list[GitEntry]:
        """The image the compose file named for the service at each commit that
        changed the file, newest first: `git log -p` of the file, with the whole
        file as context so each commit's version can be read like the file itself.
        Read again only when HEAD moves (history() runs every refresh). Empty when
        the file is not in a git repository (or git is missing)."""
        path = self.compose_file.resolve()
        head = self._git(["rev-parse", "--verify", "-q", "HEAD"], path)
        if head is None or head.returncode != 0:
            return []  # no git, not a repository, or no commit yet
        key = (head.stdout.strip(), str(path))
        if self._git_cache is not None and self._git_cache[0] == key:
            return list(self._git_cache[1])
        log = self._git([
            "-c", "core.quotepath=off", "log", "-p", "--no-color", "--no-ext-diff", "--no-textconv",
            f"-U{GIT_CONTEXT_LINES}", f"--max-count={GIT_MAX_COMMITS}", "--format=%x00commit %H %cI", "--", path.name,
        ], path)
        if log is None or log.returncode != 0:
            return []
        entries = parse_git_log(log.stdout, self.service, str(path))
        self._git_cache = (key, tuple(entries))
        return entries

    def _git(self, args: list[str], path: Path) -> Any:
        """One git command in the compose file's folder, through the project's
        runner (a timeout kills its whole process group). None when git is not
        installed or the folder is not in a repository; PlatformError when git
        fails otherwise (a repository git refuses, a timeout)."""
        result = run_command(["git", *args], timeout=self.command_timeout, cwd=str(path.parent),
                             env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
        if result.reason == MISSING:
            return None  # no git on this machine: no git history, nothing to say
        if result.reason == TIMED_OUT:
            raise Timeout(
                f"`{result.command}` (the compose file's git history) did not finish within "
                f"{self.command_timeout:g} s; the previous version is found without it."
            )
        if result.error:
            raise PlatformError(f"{result.error.rstrip('.')}; the previous version is found without the git history.")
        said = _error_line(result.stderr) if result.returncode not in (0, 1) else ""
        if "not a git repository" in said.lower():
            return None
        if said:
            raise PlatformError(f"`{result.command}` failed: {said}; the previous version is found without the git history.")
        return result

    # --- the console's record of images seen ------------------------------------------

    def _seen_file(self) -> Path:
        if self._seen_path is not None:
            return self._seen_path
        from console import locations

        return locations.state_dir() / SEEN_FILE_NAME

    def _seen_key(self) -> str:
        return f"{self.compose_file.resolve()}#{self.service}"

    def _rolled_back_key(self) -> str:
        return f"{self._seen_key()}{ROLLED_BACK_SUFFIX}"

    def _read_record(self, key: str) -> dict[str, datetime]:
        try:
            data = json.loads(self._seen_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries = data.get(key) if isinstance(data, dict) else None
        result = {}
        for image, first in (entries or {}).items() if isinstance(entries, dict) else ():
            at = _parse_time(first)
            if at is not None:
                result[str(image)] = at
        return result

    def seen_images(self) -> dict[str, datetime]:
        """Images the console saw this service run, with when it first saw each."""
        return self._read_record(self._seen_key())

    def rolled_back_images(self) -> dict[str, datetime]:
        """Images a rollback by this console went away from, with when."""
        return self._read_record(self._rolled_back_key())

    def _record_seen(self, images: Sequence[str]) -> None:
        self._record(self._seen_key(), images)

    def _record_rolled_back(self, images: Sequence[str]) -> None:
        self._record(self._rolled_back_key(), images)

    def _record(self, key: str, images: Sequence[str]) -> None:
        """Add images to one record of the state file (written only when one is
        new). Best effort: a read-only state dir loses detail, never a rollback."""
        known = self._read_record(key)
        new = [i for i in images if i and i not in known]
        if not new:
            return
        path = self._seen_file()
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            if not isinstance(data, dict):
                data = {}
            entry = data.setdefault(key, {})
            for image in new:
                entry[image] = self._clock.now().isoformat()
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(temp, path)
        except (OSError, ValueError):
            return

    # --- the Platform protocol ---------------------------------------------------

    def running_images(self, containers: Sequence[Container] | None = None) -> tuple[str, ...]:
        """What serves now: the running compose containers' image(s); after a quick
        rollback (none running), the previous container's when it runs."""
        containers = self.containers() if containers is None else containers
        running = sorted({c.image for c in containers if c.running})
        if running:
            return tuple(running)
        previous = self._serving_previous(containers)
        return (previous.image,) if previous else ()

    def _serving_previous(self, containers: Sequence[Container]) -> Container | None:
        """The previous container when it serves in the service's place (after a
        quick rollback: none of the service's compose containers runs)."""
        if any(c.running for c in containers):
            return None
        previous = self.previous()
        if previous is not None and previous.running and not self._previous_is_compose_managed(previous):
            return previous
        return None

    def quick_rollback_to_finish(self) -> str | None:
        """After a quick rollback (the previous container serves, the compose file
        still names the version rolled back from): a sentence saying the full
        rollback is the next step. None otherwise."""
        previous = self._serving_previous(self.containers())
        if previous is None:
            return None
        return (
            f"{previous.name} serves {image_tag(previous.image)} since a quick rollback and the compose file names "
            f"{image_tag(self.compose_image())}: the full rollback to {image_tag(previous.image)} is the next step."
        )

    def _evidence(self) -> _Evidence:
        """Everything the history and the choice of a target are made of: the
        compose file, what runs, and the four sources of versions."""
        file_image = self.compose_image()
        repository, _ = split_image(file_image)
        containers = self.containers()
        previous = self._serving_previous(containers)
        running = tuple(sorted({c.image for c in containers if c.running})) or ((previous.image,) if previous else ())
        self._record_seen(running)
        ev = _Evidence(repository=repository, file_image=file_image, running=running, serving_previous=previous)

        for image, first_seen in self.seen_images().items():
            repo, tag = split_image(image)
            if repo == repository and tag:
                ev.add(tag, SOURCE_SEEN, first_seen)
        local = self._local_images(repository)
        facts = self._image_facts([image_id for _, image_id in local.values()])
        for tag, (listed, image_id) in local.items():
            created, schema = facts.get(image_id, (listed, None))
            ev.add(tag, SOURCE_ENGINE, created or listed)
            ev.engine_created[tag] = created or listed
            if schema:
                ev.schemas[tag] = schema
        warnings = []
        try:
            for tag in self.registry_tags(repository):
                ev.add(tag, SOURCE_REGISTRY)
        except PlatformError as err:
            warnings.append(f"{err} The history shows the other sources only.")
        try:
            ev.git = self.git_history()
        except PlatformError as err:
            warnings.append(str(err))
        for entry in ev.git:
            repo, tag = split_image(entry.image)
            if repo == repository and tag:
                ev.add(tag, SOURCE_GIT)
                ev.commits.setdefault(tag, entry.commit)
        self.warnings = tuple(warnings)
        for image in running or (file_image,):
            repo, tag = split_image(image)
            if repo == repository and tag:
                ev.add(tag, SOURCE_RUNNING if running else SOURCE_FILE)
                ev.current_tags.add(tag)

        # What was rolled back from: the console's record, the file's git history
        # (a commit that moved the image to a lower version), and a quick rollback
        # that is not finished (the file still names what it went away from).
        for image, at in self.rolled_back_images().items():
            repo, tag = split_image(image)
            if repo == repository and tag:
                ev.rolled_back.setdefault(tag, f"the console rolled back from it at {at:%Y-%m-%d %H:%M} UTC")
        for image, note in git_rollbacks(ev.git).items():
            repo, tag = split_image(image)
            if repo == repository and tag:
                ev.rolled_back.setdefault(tag, note)
        if previous is not None and previous.image != file_image:
            _, tag = split_image(file_image)
            if tag:
                ev.rolled_back.setdefault(tag, f"a quick rollback went from it to {image_tag(previous.image)}")
        return ev

    def history(self) -> list[Revision]:
        """The image tags this service has run or can run, newest version first,
        the one running now (else the compose file's) marked current and the
        one a plain rollback goes to marked `rollback_target`."""
        ev = self._evidence()
        target, _ = self._default_target(ev, self.candidates(ev))
        return self._revisions(ev, target)

    def _default_target(self, ev: _Evidence, candidates: Sequence[TargetCandidate]) -> tuple[str | None, str]:
        """(image, why) a plain rollback goes to, or (None, why there is none):
        after a quick rollback the version the previous container serves, else
        `pick_previous` of the current version."""
        previous = ev.serving_previous
        if previous is not None:
            return previous.image, (
                f"it finishes the quick rollback: {previous.name} serves {image_tag(previous.image)} and the compose "
                f"file still names {image_tag(ev.file_image)}"
            )
        reference = ev.reference_image()
        picked, why = pick_previous(candidates, reference, ev.git, ev.engine_created.get(image_tag(reference)))
        return (picked.image if picked else None), why

    def _revisions(self, ev: _Evidence, target: str | None = None) -> list[Revision]:
        ordered = sorted(ev.sources, key=version_key)
        revisions = []
        for index, tag in enumerate(ordered, start=1):
            cause = ", ".join(sorted(ev.sources[tag]))
            if tag in ev.rolled_back:
                cause += f"; {ROLLED_BACK}"
            if not ev.sources[tag] & RAN_SOURCES:
                cause += f"; {NEVER_RAN}"
            revisions.append(
                Revision(
                    number=index,
                    images=(f"{ev.repository}:{tag}",),
                    change_cause=cause,
                    created=ev.created.get(tag),
                    current=tag in ev.current_tags,
                    ref=f"{ev.repository}:{tag}",
                    schema=ev.schemas.get(tag),
                    rollback_target=f"{ev.repository}:{tag}" == target,
                )
            )
        revisions.reverse()
        return revisions

    def candidates(self, ev: _Evidence | None = None) -> tuple[TargetCandidate, ...]:
        """Every version a rollback could go to (all but the current one), newest
        version first, each with where it was found and what is known of it."""
        ev = ev or self._evidence()
        result = []
        for tag in sorted(ev.sources, key=version_key, reverse=True):
            if tag in ev.current_tags:
                continue
            result.append(
                TargetCandidate(
                    image=f"{ev.repository}:{tag}",
                    sources=tuple(sorted(ev.sources[tag])),
                    seen_running=bool(ev.sources[tag] & RAN_SOURCES),
                    rolled_back_from=tag in ev.rolled_back,
                    created=ev.engine_created.get(tag),
                    commit=ev.commits.get(tag, ""),
                    note=ev.rolled_back.get(tag, ""),
                )
            )
        return tuple(result)

    def revision_for_tag(self, tag: str) -> int:
        """The history's revision number of a tag (`--to-tag`); NotFound names the
        tags there are."""
        history = self.history()
        found = next((r for r in history if r.versions[0] == tag), None)
        if found is None:
            known = ", ".join(r.versions[0] for r in history) or "none"
            raise NotFound(
                f"{tag} is not a tag of {self.name} in the compose file's git history, the engine or the registry "
                f"(tags: {known}); check the spelling, or push it first."
            )
        return found.number

    def health(self) -> Health:
        """Container counts: desired from the compose file, ready = running (and
        healthy when there is a healthcheck); after a quick rollback the running
        previous container counts."""
        file_image = self.compose_image()
        containers = self.containers()
        serving = [c for c in containers if c.running]
        if not serving:
            previous = self.previous()
            if previous is not None and previous.running and not self._previous_is_compose_managed(previous):
                serving = [previous]
        return Health(
            desired=self.desired_replicas(),
            ready=sum(1 for c in serving if c.ready),
            updated=sum(1 for c in serving if c.image == file_image),
            available=len(serving),
            checked_at=self._clock.now(),
        )

    def verify(self) -> Health:
        """The runbook's step 4 as counts (the same as health())."""
        return self.health()

    def plan_rollback(
        self, to_revision: int | None = None, *, quick: bool = False, to_tag: str | None = None
    ) -> RollbackPlan:
        """The runbook's rollback as a plan; changes nothing.

        Full (default): edit the `image:` line to the target tag (a backup beside
        the file), `pull`, `up -d`, then `ps` and `logs --tail=50` to verify.
        The target: `to_tag`, or revision `to_revision`, or the previous version
        (see `pick_previous`); after a quick rollback, the version the previous
        container serves, which then hands over (`docker stop` before `up -d`,
        so the port is free, `docker rm` once the service is ready).
        `quick=True`: the runbook's quick rollback, `up -d --scale SERVICE=0` and
        `docker start` of the previous container, which must exist and must not
        be one of the service's compose containers (`--scale 0` would remove it).
        """
        text = _read_text(self.compose_file)
        ev = self._evidence()
        candidates = self.candidates(ev)
        default, why = self._default_target(ev, candidates)
        history = self._revisions(ev, default)
        current = next((r for r in history if r.current), None)
        listed = ", ".join(f"{r.number}={r.versions[0]}" for r in reversed(history)) or "none"
        if quick:
            return self._plan_quick(text, history, current, to_revision, listed, candidates)
        previous = ev.serving_previous
        target: Revision | None
        if to_tag:
            target = next((r for r in history if r.versions[0] == to_tag), None)
            if target is None:
                raise NotFound(
                    f"{to_tag} is not a tag of {self.name} in the compose file's git history, the engine or the "
                    f"registry (revisions: {listed}); check the spelling, or push it first."
                )
            choice = f"{to_tag} was asked for (--to-tag)"
        elif to_revision:
            target = next((r for r in history if r.number == to_revision), None)
            if target is None:
                raise NotFound(f"revision {to_revision} not found in the history of {self.name} (revisions: {listed}).")
            choice = f"it was asked for (revision {to_revision})"
        elif default is None:
            raise NotFound(
                f"{self.name} has no version older than {image_tag(ev.reference_image())} to roll back to: {why} "
                f"(revisions: {listed}); choose one with --to-tag TAG or --to-revision N."
            )
        else:
            target, choice = next((r for r in history if r.images[0] == default), None), why
        if target is None:
            raise NotFound(f"{self.name} has no revision for the rollback target (revisions: {listed}); plan it again.")
        to_image = target.images[0]
        where = locate_image(text, self.service, str(self.compose_file))
        handover = previous is not None
        finishing = handover and previous.image == to_image
        # Finishing a quick rollback moves the compose file away from what it
        # names: that is the version the record says was rolled back from.
        file_revision = next((r for r in history if r.images[0] == ev.file_image), None)
        from_images = (ev.file_image,) if finishing else (current.images if current else ())
        from_revision = (file_revision.number if file_revision else None) if finishing else (current.number if current else None)
        base = dict(
            service=self.name,
            platform=PLATFORM,
            from_revision=from_revision,
            to_revision=target.number,
            from_images=from_images,
            to_images=(to_image,),
            resource_version=text_version(text),
            candidates=candidates,
            choice=f"{image_tag(to_image)}: {choice}",
            finishes=(f"the quick rollback that left {previous.name} serving {image_tag(previous.image)} while the "
                      f"compose file still names {image_tag(ev.file_image)}") if finishing else "",
        )
        if not handover and where.image == to_image and set(from_images) == {to_image}:
            reason = f"skipped rollback ({self.name} already runs {image_tag(to_image)} and the compose file names it)"
            return RollbackPlan(**base, skip_reason=reason, summary=reason)
        self._check_editable()
        new_text, _ = replace_image(text, self.service, to_image, str(self.compose_file))
        old_line = text.splitlines()[where.line]
        new_line = new_text.splitlines()[where.line]
        calls = [
            ApiCall(
                "edit",
                f"{self.compose_file}:{where.line + 1}",
                body=f"- {old_line.strip()}\n+ {new_line.strip()}\n(backup beside it: {self.compose_file.name}.bak-<timestamp>)",
            ),
            ApiCall("exec", shlex.join(self.compose_argv("pull", self.service))),
        ]
        if handover:
            calls.append(ApiCall("exec", shlex.join(self.docker_argv("stop", self.previous_container))))
        calls.append(ApiCall("exec", shlex.join(self.compose_argv("up", "-d", self.service))))
        if handover:
            calls.append(ApiCall("exec", shlex.join(self.docker_argv("rm", self.previous_container))))
        calls += [
            ApiCall("exec", shlex.join(self.compose_argv("ps", "-a", "--format", "json", self.service))),
            ApiCall("exec", shlex.join(self.compose_argv("logs", self.service, f"--tail={LOG_TAIL}", "--no-color"))),
        ]
        summary = (
            f"Roll back {self.name} from {_versions(from_images)} to {image_tag(to_image)} the runbook's way: "
            f"change only its image line in {self.compose_file}, pull, up -d, then check ps and the last "
            f"{LOG_TAIL} log lines; refused if the compose file changed since ({text_version(text)}). "
            f"Target {image_tag(to_image)}: {choice}."
        )
        if handover:
            summary += (
                f" {previous.name} (serving {image_tag(previous.image)} since the quick rollback) hands over: it is "
                f"stopped after the pull, just before `up -d`, so the port is free, and removed once {self.name} is "
                "ready (started again if `up -d` fails)."
            )
        summary += _target_warnings(next((c for c in candidates if c.image == to_image), None))
        if self.warnings:
            summary += " Not consulted: " + " ".join(self.warnings)
        return RollbackPlan(**base, calls=tuple(calls), summary=summary)

    def _check_editable(self) -> None:
        """Refuse, before anything is touched, a compose file the console may not
        edit: read-only for everyone (even root honours that here), or in a
        folder where the edited file and its backup cannot be written."""
        path = self.compose_file
        try:
            mode = path.stat().st_mode
        except OSError as err:
            raise PlatformError(f"Cannot read the compose file {path}: {err.strerror or err}.") from None
        if not mode & 0o222:
            raise Forbidden(
                f"The compose file {path} is read-only (mode {mode & 0o777:04o}), so the console does not edit it; "
                f"nothing was changed. Make it writable (`chmod u+w {path}`) or edit its image line by hand."
            )
        folder = path.resolve().parent
        if not os.access(path, os.W_OK) or not os.access(folder, os.W_OK | os.X_OK):
            raise Forbidden(
                f"The compose file {path} (or its folder {folder}, where the edit and its backup are written) is "
                "not writable for this user; nothing was changed. Fix the permissions or edit the file by hand."
            )

    def _plan_quick(
        self, text: str, history: list[Revision], current: Revision | None, to_revision: int | None, listed: str,
        candidates: tuple[TargetCandidate, ...] = (),
    ) -> RollbackPlan:
        previous = self.previous()
        if previous is None:
            raise NotFound(
                f"There is no container named {self.previous_container} to start: the quick rollback needs the "
                "previous container the deploy kept. Use the full rollback (edit the image line, pull, up -d)."
            )
        if self._previous_is_compose_managed(previous):
            raise Conflict(
                f"{self.previous_container} is one of Compose's own {self.service} containers, so `up -d --scale "
                f"{self.service}=0` would remove it before it could be started; use the full rollback."
            )
        _, tag = split_image(previous.image)
        target = next((r for r in history if r.images[0] == previous.image), None)
        if to_revision and (target is None or target.number != to_revision):
            raise Conflict(
                f"{self.previous_container} runs {previous.image}, not revision {to_revision} (revisions: {listed}); "
                "the quick rollback can only go back to the previous container's image."
            )
        from_images = current.images if current else ()
        base = dict(
            service=self.name,
            platform=PLATFORM,
            from_revision=current.number if current else None,
            to_revision=target.number if target else None,
            from_images=from_images,
            to_images=(previous.image,),
            resource_version=text_version(text),
            candidates=candidates,
            choice=f"{tag or previous.image}: the image of {self.previous_container}, the container the deploy kept",
        )
        if previous.running and not any(c.running for c in self.containers()):
            reason = f"skipped rollback ({self.previous_container} already serves {tag or previous.image})"
            return RollbackPlan(**base, skip_reason=reason, summary=reason)
        calls = (
            ApiCall("exec", shlex.join(self.compose_argv("up", "-d", "--scale", f"{self.service}=0", self.service))),
            ApiCall("exec", shlex.join(self.docker_argv("start", self.previous_container))),
            ApiCall("exec", shlex.join(self.docker_argv("container", "inspect", self.previous_container))),
            ApiCall("exec", shlex.join(self.docker_argv("logs", "--tail", str(LOG_TAIL), self.previous_container))),
        )
        summary = (
            f"Quick rollback of {self.name} from {_versions(from_images)} to {tag or previous.image}: stop the "
            f"service's containers (scale to 0) and start {self.previous_container}. The compose file keeps "
            f"naming {_versions((self.compose_image(),))}, so the next `docker compose up` brings that back: "
            "do the full rollback before the next deploy (a plain rollback after this one does it)."
        )
        kept = next((c for c in candidates if c.image == previous.image), None)
        if kept is not None and kept.rolled_back_from:
            # The kept container itself says its version ran: only a rollback away from it is worth a warning.
            summary += f" WARNING: {kept.version} was rolled back from ({kept.note})."
        return RollbackPlan(**base, calls=calls, summary=summary)

    def execute(self, plan: RollbackPlan, timeout: float = ROLLOUT_TIMEOUT) -> Iterator[Progress]:
        """Run the plan, one progress line per step with the command and what it
        printed, then wait (at most `timeout` wall seconds overall) until the
        containers run the target image, healthy when they have a healthcheck.

        A failed step ends with a failed Progress saying what happened and what
        to do. A failed pull restores the compose file from the backup (nothing
        else changed, so the file keeps describing what runs). A failed `up -d`
        keeps the edited file: the engine may be half-way, the operator decided
        to run the target, and re-running `up -d` is the retry; the sentence
        names the backup for going back."""
        if plan.platform != PLATFORM or plan.service != self.name:
            raise PlatformError(
                f"This plan is for {plan.platform} service {plan.service}, not for compose service {self.name}; "
                "plan the rollback again."
            )
        if plan.skip_reason:
            yield Progress(message=plan.skip_reason, at=self._clock.now(), done=True)
            return
        if not plan.to_images:
            raise PlatformError("This plan names no image to roll back to; plan the rollback again.")
        # Real containers run in wall time whatever clock the console shows.
        deadline = time.monotonic() + timeout
        if any(call.method == "edit" for call in plan.calls):
            yield from self._execute_full(plan, deadline)
        else:
            yield from self._execute_quick(plan, deadline)

    def _remaining(self, deadline: float, cap: float) -> float:
        return max(1.0, min(cap, deadline - time.monotonic()))

    def _progress(self, message: str, **kwargs: Any) -> Progress:
        return Progress(message=message, at=self._clock.now(), **kwargs)

    def _step(self, result: CommandResult) -> Progress:
        summary = result.summary(OUTPUT_SUMMARY_LINES)
        return self._progress(f"$ {result.display}" + (f"\n{summary}" if summary else ""))

    def _execute_full(self, plan: RollbackPlan, deadline: float) -> Iterator[Progress]:
        path = self.compose_file
        text = _read_text(path)
        if text_version(text) != plan.resource_version:
            raise Conflict(
                f"{path} changed since the plan was made ({plan.resource_version} → {text_version(text)}); "
                "review it and plan the rollback again."
            )
        to_image = plan.to_images[0]
        old_image = locate_image(text, self.service, str(path)).image
        new_text, _ = replace_image(text, self.service, to_image, str(path))
        self._check_editable()
        if plan.choice:
            # Why this version, in the timeline too (the candidates are on the plan).
            yield self._progress(f"Target {plan.choice}.")
        backup = self._backup_path()
        try:
            shutil.copy2(path, backup)
            if new_text != text:
                atomic_write(path, new_text)
        except OSError as err:
            # The file is as it was (the edit replaces it in one step or not at
            # all): the backup of an edit that never happened goes too.
            try:
                backup.unlink()
            except OSError:
                pass
            raise PlatformError(
                f"Cannot edit the compose file {path} ({err.strerror or err}); nothing was changed. Check the "
                "file's permissions and the free space, then try again."
            ) from None
        yield self._progress(
            f"edited {path}: image {old_image} → {to_image} (backup {backup.name})"
            if new_text != text
            else f"{path} already names {to_image} (backup {backup.name})"
        )

        pull = self.compose_argv("pull", self.service)
        try:
            result = self.run(pull, timeout=self._remaining(deadline, self.deploy_timeout))
        except PlatformError as err:
            restored = self._restore(backup)
            yield self._progress(
                f"{err} {restored} Nothing else was changed; {self.name} still runs "
                f"{_versions(plan.from_images)}.",
                failed=True,
            )
            return
        yield self._step(result)

        # The change is under way (a failed pull above left nothing changed).
        self._record_rolled_back([i for i in plan.from_images if i != to_image])
        handover = self._hands_over(plan)
        if handover:
            # After a quick rollback the previous container holds the service's
            # port: it stops just before `up -d` (the pull is done, so the gap is short).
            stop = self.docker_argv("stop", self.previous_container)
            try:
                result = self.run(stop, timeout=self._remaining(deadline, self.command_timeout))
            except PlatformError as err:
                restored = self._restore(backup)
                yield self._progress(
                    f"{err} {restored} {self.previous_container} keeps serving; nothing else was changed.", failed=True
                )
                return
            yield self._step(result)

        up = self.compose_argv("up", "-d", self.service)
        try:
            result = self.run(up, timeout=self._remaining(deadline, self.deploy_timeout))
        except PlatformError as err:
            restarted = self._restart_previous(deadline) if handover else ""
            yield self._progress(
                f"{err} The compose file now names {image_tag(to_image)} (backup {backup}): the containers may "
                f"be half-way, check `{shlex.join(self.compose_argv('ps', '-a'))}`, fix the cause and run "
                f"`{shlex.join(up)}` again, or restore the backup to go back to {image_tag(old_image)}.{restarted}",
                failed=True,
            )
            return
        yield self._step(result)
        for progress in self._wait_for_compose(to_image, deadline):
            if handover and progress.done:
                yield self._remove_previous(deadline)
            elif handover and progress.failed:
                progress = dataclasses.replace(progress, message=(
                    f"{progress.message} {self.previous_container} is stopped, not removed: "
                    f"`{shlex.join(self.docker_argv('start', self.previous_container))}` (after "
                    f"`{shlex.join(self.compose_argv('stop', self.service))}`) brings it back."
                ))
            yield progress

    def _hands_over(self, plan: RollbackPlan) -> bool:
        """The plan stops the previous container before `up -d` (after a quick rollback)."""
        stop = shlex.join(self.docker_argv("stop", self.previous_container))
        return any(call.method == "exec" and call.target == stop for call in plan.calls)

    def _restart_previous(self, deadline: float) -> str:
        """After a failed `up -d` in a hand-over: the previous container serves again."""
        start = self.docker_argv("start", self.previous_container)
        try:
            self.run(start, timeout=self._remaining(deadline, self.command_timeout))
        except PlatformError as err:
            return f" Starting {self.previous_container} again failed too ({err}): nothing serves, act now."
        return f" {self.previous_container} was started again and serves as before."

    def _remove_previous(self, deadline: float) -> Progress:
        """The hand-over's end: the quick rollback's container is no longer needed."""
        remove = self.docker_argv("rm", self.previous_container)
        try:
            return self._step(self.run(remove, timeout=self._remaining(deadline, self.command_timeout)))
        except PlatformError as err:
            return self._progress(f"Removing {self.previous_container} failed ({err}); it is stopped: remove it by hand.")

    def _backup_path(self) -> Path:
        stamp = self._clock.now().astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        candidate = self.compose_file.with_name(f"{self.compose_file.name}.bak-{stamp}")
        counter = 1
        while candidate.exists():
            counter += 1
            candidate = self.compose_file.with_name(f"{self.compose_file.name}.bak-{stamp}-{counter}")
        return candidate

    def _restore(self, backup: Path) -> str:
        try:
            atomic_write(self.compose_file, _read_text(backup))
        except (OSError, PlatformError) as err:
            return f"Restoring {self.compose_file} from {backup} failed ({err}): copy it back by hand."
        return f"{self.compose_file} was restored from {backup.name}."

    def _wait_for_compose(self, image: str, deadline: float) -> Iterator[Progress]:
        """`docker compose ps` until every container of the service runs the image
        (healthy when it has a healthcheck), then its last log lines."""
        last = None
        desired = self.desired_replicas()
        while True:
            try:
                containers = self.containers()
            except PlatformError as err:
                yield self._progress(f"The rollback was applied, but checking its containers failed: {err}", failed=True)
                return
            line = _count_line(self.name, containers, image)
            on_target = [c for c in containers if c.image == image]
            done = bool(on_target) and len(on_target) == len(containers) and all(c.ready for c in containers)
            ready = sum(1 for c in on_target if c.ready)
            if line != last or done:
                last = line
                if not done:
                    yield self._progress(f"Waiting for {self.name}: {line}...", ready=ready, updated=len(on_target), desired=desired)
            stopped = [c for c in on_target if c.state in ("exited", "dead")]
            if done or stopped or time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL_SECONDS)
        logs = self._compose_logs(deadline)
        if logs is not None:
            yield logs
        if done:
            yield self._progress(
                f"{self.name} rolled back to {image_tag(image)}: {line}", done=True, ready=ready, updated=len(on_target), desired=desired
            )
        elif stopped:
            yield self._progress(
                f"{self.name} on {image_tag(image)} stopped ({stopped[0].status}); see its log above, then fix "
                f"the cause or roll back to another revision.",
                failed=True, ready=ready, updated=len(on_target), desired=desired,
            )
        else:
            yield self._progress(
                f"{self.name} did not become ready on {image_tag(image)} in time ({line}); check "
                f"`{shlex.join(self.compose_argv('ps'))}` and its logs, then decide whether to wait or escalate.",
                failed=True, ready=ready, updated=len(on_target), desired=desired,
            )

    def _compose_logs(self, deadline: float) -> Progress | None:
        argv = self.compose_argv("logs", self.service, f"--tail={LOG_TAIL}", "--no-color")
        try:
            result = self.run(argv, timeout=self._remaining(deadline, self.command_timeout))
        except PlatformError as err:
            return self._progress(f"Reading the log failed: {err}")
        return self._progress(f"$ {result.display}\n{result.summary(LOG_TAIL)}".rstrip())

    def _execute_quick(self, plan: RollbackPlan, deadline: float) -> Iterator[Progress]:
        to_image = plan.to_images[0]
        text = _read_text(self.compose_file)
        if text_version(text) != plan.resource_version:
            raise Conflict(
                f"{self.compose_file} changed since the plan was made; review it and plan the rollback again."
            )
        previous = self.previous()
        if previous is None or previous.image != to_image:
            found = f"runs {previous.image}" if previous else "is gone"
            raise Conflict(
                f"{self.previous_container} {found} since the plan was made; plan the rollback again."
            )
        scale = self.compose_argv("up", "-d", "--scale", f"{self.service}=0", self.service)
        try:
            result = self.run(scale, timeout=self._remaining(deadline, self.deploy_timeout))
        except PlatformError as err:
            yield self._progress(f"{err} Nothing was started; check the service and try again.", failed=True)
            return
        yield self._step(result)
        self._record_rolled_back([i for i in plan.from_images if i != to_image])
        start = self.docker_argv("start", self.previous_container)
        try:
            result = self.run(start, timeout=self._remaining(deadline, self.command_timeout))
        except PlatformError as err:
            yield self._progress(
                f"{err} {self.name} is scaled to 0 and NOT serving: run `{shlex.join(self.compose_argv('up', '-d', self.service))}` "
                f"to bring {_versions(plan.from_images)} back, or fix the cause and start {self.previous_container} again.",
                failed=True,
            )
            return
        yield self._step(result)
        last = None
        while True:
            current = self.previous()
            ready = current is not None and current.ready
            line = (
                f"{self.previous_container} is {current.state if current else 'gone'}"
                + (f" ({current.health})" if current and current.health else "")
            )
            if line != last and not ready:
                yield self._progress(f"Waiting for {line}...", ready=0, desired=1)
                last = line
            if ready or current is None or current.state in ("exited", "dead") or time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL_SECONDS)
        logs_argv = self.docker_argv("logs", "--tail", str(LOG_TAIL), self.previous_container)
        try:
            logs = self.run(logs_argv, timeout=self._remaining(deadline, self.command_timeout))
            yield self._progress(f"$ {logs.display}\n{logs.summary(LOG_TAIL)}".rstrip())
        except PlatformError as err:
            yield self._progress(f"Reading the log failed: {err}")
        if ready:
            yield self._progress(
                f"{self.name} rolled back to {image_tag(to_image)}: {self.previous_container} running"
                + (f" ({current.health})" if current and current.health else "")
                + f". The compose file still names {image_tag(self.compose_image())}: do the full rollback "
                "before the next `docker compose up`.",
                done=True, ready=1, updated=1, desired=1,
            )
        else:
            yield self._progress(
                f"{self.previous_container} did not become ready ({line}); {self.name} is scaled to 0: run "
                f"`{shlex.join(self.compose_argv('up', '-d', self.service))}` to bring {_versions(plan.from_images)} "
                "back, or use the full rollback.",
                failed=True, ready=0, desired=1,
            )

    # --- the runbook's step 4 ----------------------------------------------

    def pods(self) -> tuple[PodInfo, ...]:
        """`docker compose ps`: the service's containers as PodInfo rows."""
        now = self._clock.now()
        rows = []
        for c in self.containers():
            rows.append(
                PodInfo(
                    name=c.name,
                    ready=c.ready,
                    ready_containers="1/1" if c.ready else "0/1",
                    status=c.status or c.state,
                    restarts=0,
                    age=(now - c.created) if c.created else None,
                    images=(c.image,),
                    owner=self.service,
                    created=c.created,
                )
            )
        return tuple(rows)

    def logs(self, tail: int = LOG_TAIL) -> tuple[PodLogs, ...]:
        """`docker compose logs SERVICE --tail=N`, split per container."""
        argv = self.compose_argv("logs", self.service, f"--tail={tail}", "--no-color")
        try:
            result = self.run(argv)
        except PlatformError as err:
            return (PodLogs(pod=self.service, lines=(), error=str(err)),)
        per: dict[str, list[str]] = {}
        for line in result.stdout.splitlines():
            name, sep, rest = line.partition(" | ")
            key = name.strip() if sep else self.service
            per.setdefault(key, []).append(rest if sep else line)
        return tuple(PodLogs(pod=name, lines=tuple(lines)) for name, lines in per.items())


def never_ran(revision: Revision) -> bool:
    """True for a history entry the console never saw running (a tag from the
    registry or the local engine only)."""
    return (revision.change_cause or "").endswith(NEVER_RAN)


def _versions(images: Sequence[str]) -> str:
    return ", ".join(image_tag(i) for i in images) or "nothing running"
