"""Trainer controls of a running drill: pause and resume simulated time,
change its speed, inject a note, a fact or an external outage. Served at
`POST /drill/control` (JSON) by the drill server; `rollback-console
drill-ctl` is its client. Each control is recorded: in the world's story (a
note the console shows and puts in the timeline) and in `trainer_log`, which
the drill record keeps.

Request bodies (one `action` each):

- `{"action": "pause"}`, `{"action": "resume"}`
- `{"action": "speed", "speed": 10}` (0.01 to 1000)
- `{"action": "note", "text": "The DBA says the migration cannot be undone."}`
- `{"action": "facts", "facts": {"migration_applied": true}}` (the scenario's facts fields)
- `{"action": "outage", "service": "order-service", "active": true, "dependency": "...", "error_rate": 0.2}`
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from console.drill.scenario import TimelineEvent
from console.drill.scenario import explain_error

if TYPE_CHECKING:
    from console.drill.world import World

ACTIONS = ("pause", "resume", "speed", "note", "facts", "outage")
MIN_SPEED, MAX_SPEED = 0.01, 1000.0
_lock = threading.Lock()


class ControlError(ValueError):
    """A control request that cannot be applied; str() says what is wrong and what to send."""


def _clock(world: World):
    if world.time_locked:
        raise ControlError(f"simulated time cannot be paused or sped up here: {world.time_locked}")
    clock = world.clock
    if not hasattr(clock, "set_speed"):
        raise ControlError("this drill's clock cannot be paused or sped up (it is not a simulated clock)")
    return clock


def _log(world: World, at: datetime, text: str, story: bool = True) -> None:
    with world.store.lock:
        world.trainer_log.append((at, text))
        if story:
            world.notes.append((at, f"Trainer: {text}"))


def apply(world: World, request: Any) -> dict[str, Any]:
    """Apply one control request (parsed JSON) to `world`; returns what was done.
    Raises ControlError with a sentence for a request that is not one."""
    if not isinstance(request, dict) or request.get("action") not in ACTIONS:
        raise ControlError(f"send a JSON object with an action, one of {', '.join(ACTIONS)}")
    action = request["action"]
    with _lock:
        if action in ("pause", "resume", "speed"):
            return _time(world, action, request)
        event = _event(world, action, request)
        world.apply_now(event)
        text = {"note": lambda: f"note: {event.note}",
                "facts": lambda: "facts: " + ", ".join(f"{k}={v}" for k, v in (event.facts or {}).items()),
                "outage": lambda: f"outage of {event.external_outage.dependency} for {event.external_outage.service}: "
                                  + ("active" if event.external_outage.active else "recovered")}[action]()
        # The event left its own entry in the story (a note, or the world's line on it).
        _log(world, world.now, text, story=False)
        return {"done": text, "at": world.now.isoformat()}


def _time(world: World, action: str, request: dict) -> dict[str, Any]:
    clock = _clock(world)
    paused_speed = world.paused_speed
    if action == "pause":
        if paused_speed is not None:
            raise ControlError("the drill is already paused; resume it first")
        world.advance()
        world.paused_speed = clock.speed
        clock.set_speed(0)
        text = "paused simulated time"
    elif action == "resume":
        if paused_speed is None:
            raise ControlError("the drill is not paused")
        clock.set_speed(paused_speed)
        world.paused_speed = None
        text = f"resumed simulated time at speed {paused_speed:g}"
    else:
        speed = request.get("speed")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not MIN_SPEED <= speed <= MAX_SPEED:
            raise ControlError(f"speed must be a number from {MIN_SPEED:g} to {MAX_SPEED:g}")
        if paused_speed is not None:
            world.paused_speed = float(speed)
            text = f"speed set to {speed:g} (applies on resume)"
        else:
            world.advance()
            clock.set_speed(float(speed))
            text = f"speed set to {speed:g}"
    world.advance()
    _log(world, world.now, text)
    return {"done": text, "at": world.now.isoformat()}


def _event(world: World, action: str, request: dict) -> TimelineEvent:
    at = max(world.elapsed(), 0.0)
    if action == "note":
        data: dict[str, Any] = {"at": at, "note": request.get("text")}
        if not isinstance(data["note"], str) or not data["note"].strip():
            raise ControlError("a note needs a non-empty text")
    elif action == "facts":
        data = {"at": at, "facts": request.get("facts")}
        if not isinstance(data["facts"], dict) or not data["facts"]:
            raise ControlError("facts needs a mapping of fact names to values, e.g. {\"data_corruption\": true}")
    else:
        fields = {k: v for k, v in request.items() if k != "action"}
        data = {"at": at, "external_outage": fields}
        if fields.get("service") not in world.service_names():
            raise ControlError(f"outage needs a service of this drill: {', '.join(world.service_names())}")
    try:
        return TimelineEvent.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or action
        raise ControlError(f"{action}: {where}: {explain_error(first)}") from None


COMMANDS = "pause | resume | speed X | note TEXT | fact NAME=VALUE ... | outage SERVICE [recovered]"


def parse_command(text: str) -> dict[str, Any]:
    """A trainer's one-line command (the console's trainer key) as a control request."""
    import yaml

    words = text.split()
    if not words:
        raise ControlError(f"type a command: {COMMANDS}")
    verb, rest = words[0].lower(), words[1:]
    if verb in ("pause", "resume") and not rest:
        return {"action": verb}
    if verb == "speed" and len(rest) == 1:
        try:
            return {"action": "speed", "speed": float(rest[0])}
        except ValueError:
            raise ControlError(f"speed needs a number from {MIN_SPEED:g} to {MAX_SPEED:g}") from None
    if verb == "note" and rest:
        return {"action": "note", "text": text.strip()[len(words[0]):].strip()}
    if verb == "fact" and rest:
        facts = {}
        for item in rest:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise ControlError(f"{item!r} is not NAME=VALUE (for example data_corruption=true)")
            facts[name] = yaml.safe_load(value) if value else None
        return {"action": "facts", "facts": facts}
    if verb == "outage" and len(rest) in (1, 2) and (len(rest) == 1 or rest[1] == "recovered"):
        return {"action": "outage", "service": rest[0], "active": len(rest) == 1}
    raise ControlError(f"{text.strip()!r} is not a trainer command: {COMMANDS}")


def parse_body(body: bytes) -> Any:
    """The request body as JSON; ControlError when it is not."""
    try:
        return json.loads(body.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError("the body must be JSON, e.g. {\"action\": \"pause\"}") from None
