"""What a console drill leaves behind, and what its console knows of the drill.

Each drill run gets a directory of its own under
`$XDG_STATE_HOME/rollback-console/drills/ID/` (ID: the wall-clock start and
the scenario, "20240117-144300-bad-deploy"): `incidents.db`, the drill's
incident store (never the real one), and `drill.json`, the drill's record
(scenario, story, trainer actions, the debrief). `rollback-console export
--drill` reads them back, long after the drill's world is gone.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console import locations
from console.checklist import DEFAULT_CHECKLIST, Checklist
from console.drill.debrief import DEFAULT_WINDOW, Debrief, debrief, debrief_lines
from console.drill.scenario import Scenario
from console.model import Event

if TYPE_CHECKING:
    from console.decision import Thresholds
    from console.drill.world import World
    from console.store import Store

RECORD_FILE = "drill.json"
STORE_FILE = "incidents.db"


class DrillRecordError(Exception):
    """A drill record cannot be found or read; str() says which and what to do."""


def drills_dir() -> Path:
    """$XDG_STATE_HOME/rollback-console/drills: one directory per drill run."""
    return locations.state_dir() / "drills"


@dataclass
class DrillRecord:
    """One drill run's directory and its `drill.json` data."""

    id: str
    directory: Path
    data: dict[str, Any]

    @property
    def store_path(self) -> Path:
        """The drill's own incident database."""
        return self.directory / STORE_FILE

    @property
    def scenario(self) -> str:
        return str(self.data.get("scenario", ""))

    def save(self) -> None:
        """Write drill.json (whole: a reader never sees half a file)."""
        path = self.directory / RECORD_FILE
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(partial, path)

    def add(self, key: str, entry: dict[str, Any]) -> None:
        """Append `entry` to the list `key` ("trainer") and save."""
        self.data.setdefault(key, []).append(entry)
        self.save()


def create_record(scenario: Scenario, started_at: datetime, speed: float, wall_now: datetime,
                  base: Path | None = None) -> DrillRecord:
    """A new record directory for a drill of `scenario` whose world starts at `started_at`."""
    base = base or drills_dir()
    stem = f"{wall_now.astimezone(timezone.utc):%Y%m%d-%H%M%S}-{scenario.name}"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    drill_id, n = stem, 1
    while True:
        try:
            (base / drill_id).mkdir(mode=0o700)
            break
        except FileExistsError:
            n += 1
            drill_id = f"{stem}-{n}"
    record = DrillRecord(drill_id, base / drill_id, {
        "drill": drill_id,
        "scenario": scenario.name,
        "description": scenario.description.strip(),
        "expect": {"action": scenario.expect.action, "by_seconds": scenario.expect.by, "row": scenario.expect.row},
        "started_at": started_at.isoformat(),
        "wall_started_at": wall_now.isoformat(),
        "speed": speed,
        "trainer": [],
        "debrief": None,
        # While the drill runs: where its server listens (drill-ctl finds it here).
        "server_url": None,
    })
    record.save()
    return record


def list_records(base: Path | None = None) -> list[DrillRecord]:
    """Every drill record, oldest first (ids start with the wall-clock start)."""
    base = base or drills_dir()
    if not base.is_dir():
        return []
    found = []
    for directory in sorted(p for p in base.iterdir() if (p / RECORD_FILE).is_file()):
        try:
            found.append(DrillRecord(directory.name, directory, json.loads((directory / RECORD_FILE).read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # a damaged record is skipped here; naming it gives the reason
    return found


def load_record(drill_id: str | None, latest: bool, base: Path | None = None) -> DrillRecord:
    """The record named `drill_id`, or the most recent one with `latest`."""
    base = base or drills_dir()
    if drill_id and latest:
        raise DrillRecordError("Give a drill ID or --latest, not both.")
    if not drill_id and not latest:
        raise DrillRecordError("Say which drill to export: a drill ID, or --latest for the most recent one.")
    if latest:
        records = list_records(base)
        if not records:
            raise DrillRecordError(f"There are no drill records in {base} yet: run `rollback-console drill` first.")
        return records[-1]
    directory = base / str(drill_id)
    if "/" in str(drill_id) or not (directory / RECORD_FILE).is_file():
        known = ", ".join(r.id for r in list_records(base)[-5:]) or "none"
        raise DrillRecordError(f"There is no drill {drill_id} in {base} (latest: {known}).")
    try:
        data = json.loads((directory / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DrillRecordError(f"The drill record {directory / RECORD_FILE} cannot be read ({err}).") from None
    return DrillRecord(directory.name, directory, data)


def all_events(store: Store) -> list[Event]:
    """Every event of every incident in a drill's store, oldest first."""
    events: list[Event] = []
    for found in store.incidents():
        events.extend(store.events(found.id, newest_first=False))
    return sorted(events, key=lambda e: e.at)


class DrillLink:
    """What a console drill's session knows of its drill: the story so far,
    when the debrief is due, the debrief itself, and the record it goes in."""

    def __init__(self, world: World, record: DrillRecord, checklist: Checklist = DEFAULT_CHECKLIST) -> None:
        self.world = world
        self.record = record
        self.checklist = checklist
        self.scenario = world.scenario
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return f"DRILL {self.scenario.name}"

    def story(self) -> list[tuple[datetime, str]]:
        """The description at t=0, then every note the drill has revealed (the
        scenario's timeline and the trainer's), in order."""
        opening = " ".join(self.scenario.description.split()) or "(no description)"
        with self.world.store.lock:
            notes = list(self.world.notes)
        return [(self.world.start, f"{self.scenario.name}: {opening}"), *notes]

    def control(self, command: str) -> str:
        """Apply a trainer's one-line command (console.drill.control); returns
        what was done. Raises ValueError with a sentence when it cannot."""
        from console.drill import control

        return control.apply(self.world, control.parse_command(command))["done"]

    def debrief_due(self, now: datetime) -> bool:
        """The scenario's `by` (or the default window) has passed."""
        window = timedelta(seconds=self.scenario.expect.by) if self.scenario.expect.by else DEFAULT_WINDOW
        return now >= self.world.start + window

    def debrief_now(self, store: Store, now: datetime) -> Debrief:
        """Score the drill so far from its store and keep the debrief in the record."""
        result = debrief(self.scenario, self.world.start, all_events(store), now, self.checklist)
        with self._lock:
            self.record.data["debrief"] = result.to_data()
            self.record.data["story"] = [{"at": at.isoformat(), "text": text} for at, text in self.story()]
            with self.world.store.lock:
                trainer = list(self.world.trainer_log)
            self.record.data["trainer"] = [{"at": at.isoformat(), "text": text} for at, text in trainer]
            self.record.save()
        return result


# --- export ------------------------------------------------------------------------


def export_drill(record: DrillRecord, fmt: str, now: datetime, *, checklist: Checklist = DEFAULT_CHECKLIST,
                 thresholds: Thresholds | None = None) -> str:
    """The drill's record in `fmt` ("md" or "json"): DRILL, the scenario, the
    debrief with its score, the story and every incident of the drill."""
    from console.export import ExportError, gather, to_data, to_markdown
    from console.store import Store, StoreError

    incidents: list[dict[str, Any]] = []
    if record.store_path.exists():
        try:
            with Store(record.store_path) as store:
                for found in sorted(store.incidents(), key=lambda r: r.opened_at):
                    data = to_data(gather(store, found.id, now), checklist, thresholds)
                    data["drill"] = record.scenario
                    incidents.append(data)
        except StoreError as err:
            raise ExportError(f"Cannot read the drill's incidents in {record.store_path}: {err}") from None
    data = {
        "drill": True,
        "mark": "DRILL",
        "id": record.id,
        "scenario": record.scenario,
        "description": record.data.get("description", ""),
        "expect": record.data.get("expect"),
        "started_at": record.data.get("started_at"),
        "speed": record.data.get("speed"),
        "exported_at": now.isoformat(),
        "debrief": record.data.get("debrief"),
        "story": record.data.get("story", []),
        "trainer": record.data.get("trainer", []),
        "incidents": incidents,
    }
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return _markdown(data, [to_markdown(i) for i in incidents])


def _markdown(data: dict[str, Any], incidents: Iterable[str]) -> str:
    lines = [f"# DRILL {data['scenario']} ({data['id']})", "",
             "This was a training drill against a simulated world, not a real incident.", ""]
    if data["description"]:
        lines += [data["description"], ""]
    lines += [f"- **Drill started (simulated t=0):** {data['started_at']}", f"- **Speed:** {data['speed']}×", ""]
    lines += ["## Debrief", ""]
    lines += debrief_lines(data["debrief"]) if data["debrief"] else ["No debrief was made: the drill ended before one."]
    lines += ["", "## Story", ""]
    lines += [f"- {entry['at']}: {entry['text']}" for entry in data["story"]] or ["No notes were revealed."]
    if data["trainer"]:
        lines += ["", "## Trainer", ""]
        lines += [f"- {entry.get('at', '')}: {entry.get('text', '')}" for entry in data["trainer"]]
    for text in incidents:
        # Each incident's own headings one level down, under the drill's.
        lines += ["", *("#" + line if line.startswith("#") else line for line in text.rstrip("\n").splitlines())]
    return "\n".join(lines) + "\n"
