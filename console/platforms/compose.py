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

History merges three sources: tags the console saw running (a small JSON file
in the console's state dir, `compose-images.json`, written when a new one
shows up), the repository's tags in the local engine (`docker image ls`), and
the registry's `/v2/REPO/tags/list` when one is configured. Revision numbers
rank the tags by version (1.2.1 < 1.2.2 < 1.2.3 < 1.10.0; tags that are not
versions, like `latest`, rank lowest), so "the previous revision" is the next
lower version than the one running that the console saw running: a tag known
only to the registry or the local engine is listed (its change cause ends in
"never seen running") and can be chosen explicitly, never by default.

A local image may say which migration it needs with the label
`rollback-console/schema` (model.SCHEMA_ANNOTATION), read with `docker image
inspect` once per image ID; registry-only tags carry no mark (that would take a
manifest and config fetch per tag).
"""

from __future__ import annotations

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

from console.clock import Clock, SystemClock
from console.commands import DENIED, MISSING, TIMED_OUT, CommandResult, run_command
from console.model import SCHEMA_ANNOTATION, ApiCall, Health, Progress, Revision, RollbackPlan, image_tag
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
    file, never half of one), keeping its mode and, where allowed, its owner."""
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
    prefix = f"`{result.display}` failed: {said}."
    if "cannot connect to the docker daemon" in low or ("docker.sock" in low and "no such file" in low) or (
        "connection refused" in low
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
        return NotFound(f"{prefix} That tag is not in the registry: check that it was pushed, or roll back to another revision.")
    if "no such container" in low or "no such service" in low:
        return NotFound(f"{prefix}{' ' + hint if hint else ''}")
    return PlatformError(f"`{result.display}` failed (exit {result.returncode}): {said}.{' ' + hint if hint else ''}")


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
    try:
        return datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}{zone}").astimezone(timezone.utc)
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
        # Image ID -> its schema label (None: it has none), see image_schemas().
        self._schemas: dict[str, str | None] = {}

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
        """Tags of the repository in the local engine, with their image's creation time."""
        return {tag: created for tag, (created, _) in self._local_images(repository).items()}

    def _local_images(self, repository: str) -> dict[str, tuple[datetime | None, str]]:
        """Tags of the repository in the local engine -> (creation time, image ID)."""
        result = self.run(self.docker_argv("image", "ls", "--format", "{{json .}}", repository))
        tags: dict[str, tuple[datetime | None, str]] = {}
        for item in _json_objects(result.stdout):
            tag = str(item.get("Tag") or "")
            if tag and tag != "<none>":
                tags[tag] = (_parse_time(item.get("CreatedAt")), str(item.get("ID") or ""))
        return tags

    def image_schemas(self, image_ids: Sequence[str]) -> dict[str, str]:
        """Image ID -> the migration the image says it needs (its
        `model.SCHEMA_ANNOTATION` label), for local images that have one.
        An image's labels never change, so each ID is inspected once per
        console; a failed inspect leaves the marks out (the config's
        database.schema_requirements still applies)."""
        unknown = [i for i in dict.fromkeys(image_ids) if i and i not in self._schemas]
        if unknown:
            argv = self.docker_argv("image", "inspect", "--format", "{{.Id}} {{json .Config.Labels}}", *unknown)
            try:
                output = self.run(argv, check=False).stdout
            except PlatformError:
                output = ""
            # Only the images it answered for are remembered: the others are asked again next time.
            for line in output.splitlines():
                full, _, labels = line.strip().partition(" ")
                try:
                    value = (json.loads(labels) or {}).get(SCHEMA_ANNOTATION)
                except (ValueError, AttributeError):
                    continue
                digest = full.split(":", 1)[-1]
                for image_id in unknown:
                    if digest.startswith(image_id.split(":", 1)[-1]):
                        self._schemas[image_id] = (str(value).strip() or None) if value else None
        return {i: self._schemas[i] for i in image_ids if self._schemas.get(i)}

    def registry_tags(self, repository: str) -> list[str]:
        """The registry's `GET /v2/REPO/tags/list` (empty when no registry is configured)."""
        if not self.registry:
            return []
        import httpx

        url = f"{self.registry}/v2/{registry_path(repository)}/tags/list"
        try:
            response = httpx.get(url, timeout=self.registry_timeout, follow_redirects=True)
        except httpx.TimeoutException:
            raise Timeout(f"The registry at {self.registry} did not answer within {self.registry_timeout:g} s.") from None
        except httpx.HTTPError as err:
            raise Unavailable(f"Cannot reach the registry at {self.registry} ({type(err).__name__}).") from None
        if response.status_code == 401:
            raise Forbidden(f"The registry at {self.registry} asks for credentials to list {registry_path(repository)}.")
        if response.status_code == 404:
            return []
        if response.status_code >= 400:
            raise Unavailable(f"The registry at {self.registry} answered HTTP {response.status_code} to {url}.")
        try:
            return [str(t) for t in (response.json().get("tags") or [])]
        except (ValueError, AttributeError):
            raise Unavailable(f"The registry at {self.registry} answered {url} with something that is not a tag list.") from None

    # --- the console's record of images seen ------------------------------------------

    def _seen_file(self) -> Path:
        if self._seen_path is not None:
            return self._seen_path
        from console import locations

        return locations.state_dir() / SEEN_FILE_NAME

    def _seen_key(self) -> str:
        return f"{self.compose_file.resolve()}#{self.service}"

    def seen_images(self) -> dict[str, datetime]:
        """Images the console saw this service run, with when it first saw each."""
        try:
            data = json.loads(self._seen_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries = data.get(self._seen_key()) if isinstance(data, dict) else None
        result = {}
        for image, first in (entries or {}).items():
            at = _parse_time(first)
            if at is not None:
                result[str(image)] = at
        return result

    def _record_seen(self, images: Sequence[str]) -> None:
        """Add images to the record (written only when one is new). Best effort:
        a read-only state dir loses history detail, never a rollback."""
        known = self.seen_images()
        new = [i for i in images if i and i not in known]
        if not new:
            return
        path = self._seen_file()
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            if not isinstance(data, dict):
                data = {}
            entry = data.setdefault(self._seen_key(), {})
            for image in new:
                entry[image] = self._clock.now().isoformat()
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(temp, path)
        except OSError:
            return

    # --- the Platform protocol ---------------------------------------------------

    def running_images(self, containers: Sequence[Container] | None = None) -> tuple[str, ...]:
        """What serves now: the running compose containers' image(s); after a quick
        rollback (none running), the previous container's when it runs."""
        containers = self.containers() if containers is None else containers
        running = sorted({c.image for c in containers if c.running})
        if running:
            return tuple(running)
        previous = self.previous()
        if previous is not None and previous.running and not self._previous_is_compose_managed(previous):
            return (previous.image,)
        return ()

    def history(self) -> list[Revision]:
        """The image tags this service has run or can run, newest version first,
        the one running now (else the compose file's) marked current."""
        file_image = self.compose_image()
        repository, _ = split_image(file_image)
        running = self.running_images()
        self._record_seen(running)
        current_images = running or (file_image,)

        sources: dict[str, set[str]] = {}
        created: dict[str, datetime | None] = {}

        def add(tag: str, source: str, at: datetime | None = None) -> None:
            sources.setdefault(tag, set()).add(source)
            if at is not None and (created.get(tag) is None or at < created[tag]):  # type: ignore[operator]
                created[tag] = at
            created.setdefault(tag, None)

        for image, first_seen in self.seen_images().items():
            repo, tag = split_image(image)
            if repo == repository and tag:
                add(tag, "seen running", first_seen)
        local = self._local_images(repository)
        for tag, (at, _) in local.items():
            add(tag, "local", at)
        schemas = self.image_schemas([image_id for _, image_id in local.values()])
        warnings = []
        try:
            for tag in self.registry_tags(repository):
                add(tag, "registry")
        except PlatformError as err:
            warnings.append(f"{err} The history shows local tags only.")
        self.warnings = tuple(warnings)
        current_tags = set()
        for image in current_images:
            repo, tag = split_image(image)
            if repo == repository and tag:
                add(tag, "running" if running else "compose file")
                current_tags.add(tag)

        ordered = sorted(sources, key=version_key)
        revisions = [
            Revision(
                number=index,
                images=(f"{repository}:{tag}",),
                change_cause=", ".join(sorted(sources[tag]))
                + ("" if sources[tag] & RAN_SOURCES else f"; {NEVER_RAN}"),
                created=created.get(tag),
                current=tag in current_tags,
                ref=f"{repository}:{tag}",
                schema=schemas.get(local[tag][1]) if tag in local else None,
            )
            for index, tag in enumerate(ordered, start=1)
        ]
        revisions.reverse()
        return revisions

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

    def plan_rollback(self, to_revision: int | None = None, *, quick: bool = False) -> RollbackPlan:
        """The runbook's rollback as a plan; changes nothing.

        Full (default): edit the `image:` line to the target tag (a backup beside
        the file), `pull`, `up -d`, then `ps` and `logs --tail=50` to verify.
        `quick=True`: the runbook's quick rollback, `up -d --scale SERVICE=0` and
        `docker start` of the previous container, which must exist and must not
        be one of the service's compose containers (`--scale 0` would remove it).
        """
        text = _read_text(self.compose_file)
        history = self.history()
        current = next((r for r in history if r.current), None)
        from_images = current.images if current else ()
        listed = ", ".join(f"{r.number}={r.versions[0]}" for r in reversed(history)) or "none"
        target: Revision | None
        if quick:
            return self._plan_quick(text, history, current, to_revision, listed)
        if to_revision:
            target = next((r for r in history if r.number == to_revision), None)
            if target is None:
                raise NotFound(f"revision {to_revision} not found in the history of {self.name} (revisions: {listed}).")
        else:
            # Only a tag that ran here is a safe default: a tag from the registry or
            # the local engine alone may never have worked (or never been deployed).
            older = [r for r in history if current is not None and r.number < current.number]
            ran = [r for r in older if not never_ran(r)]
            if not ran:
                others = f"; tags never seen running can be chosen explicitly (revisions: {listed})" if older else \
                    f" (revisions: {listed})"
                raise NotFound(
                    f"{self.name} has no tag older than {', '.join(current.versions) if current else 'the current one'} "
                    f"that the console saw running, so there is no known-good version to roll back to{others}."
                )
            target = ran[0]
        to_image = target.images[0]
        where = locate_image(text, self.service, str(self.compose_file))
        base = dict(
            service=self.name,
            platform=PLATFORM,
            from_revision=current.number if current else None,
            to_revision=target.number,
            from_images=from_images,
            to_images=(to_image,),
            resource_version=text_version(text),
        )
        if where.image == to_image and set(from_images) == {to_image}:
            reason = f"skipped rollback ({self.name} already runs {image_tag(to_image)} and the compose file names it)"
            return RollbackPlan(**base, skip_reason=reason, summary=reason)
        new_text, _ = replace_image(text, self.service, to_image, str(self.compose_file))
        old_line = text.splitlines()[where.line]
        new_line = new_text.splitlines()[where.line]
        calls = (
            ApiCall(
                "edit",
                f"{self.compose_file}:{where.line + 1}",
                body=f"- {old_line.strip()}\n+ {new_line.strip()}\n(backup beside it: {self.compose_file.name}.bak-<timestamp>)",
            ),
            ApiCall("exec", shlex.join(self.compose_argv("pull", self.service))),
            ApiCall("exec", shlex.join(self.compose_argv("up", "-d", self.service))),
            ApiCall("exec", shlex.join(self.compose_argv("ps", "-a", "--format", "json", self.service))),
            ApiCall("exec", shlex.join(self.compose_argv("logs", self.service, f"--tail={LOG_TAIL}", "--no-color"))),
        )
        summary = (
            f"Roll back {self.name} from {_versions(from_images)} to {image_tag(to_image)} the runbook's way: "
            f"change only its image line in {self.compose_file}, pull, up -d, then check ps and the last "
            f"{LOG_TAIL} log lines; refused if the compose file changed since ({text_version(text)})."
        )
        if never_ran(target):
            summary += f" {image_tag(to_image)} was never seen running here: check that it works before relying on it."
        return RollbackPlan(**base, calls=calls, summary=summary)

    def _plan_quick(self, text: str, history: list[Revision], current: Revision | None, to_revision: int | None, listed: str) -> RollbackPlan:
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
            "do the full rollback before the next deploy."
        )
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
        backup = self._backup_path()
        try:
            shutil.copy2(path, backup)
            if new_text != text:
                atomic_write(path, new_text)
        except OSError as err:
            raise PlatformError(
                f"Cannot edit {path} ({err.strerror or err}); nothing was changed. Check the file's "
                "permissions and the free space, then try again."
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

        up = self.compose_argv("up", "-d", self.service)
        try:
            result = self.run(up, timeout=self._remaining(deadline, self.deploy_timeout))
        except PlatformError as err:
            yield self._progress(
                f"{err} The compose file now names {image_tag(to_image)} (backup {backup}): the containers may "
                f"be half-way, check `{shlex.join(self.compose_argv('ps', '-a'))}`, fix the cause and run "
                f"`{shlex.join(up)}` again, or restore the backup to go back to {image_tag(old_image)}.",
                failed=True,
            )
            return
        yield self._step(result)
        yield from self._wait_for_compose(to_image, deadline)

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
