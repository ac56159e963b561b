"""Each drill service's migration ledger, served the way a production
migration source answers: Spring Boot Actuator's `/actuator/flyway` JSON at
`GET /migrations/NAME`. The console reads it through its ordinary HTTP source
(`database.migration_status.url`), so a world whose facts say a migration was
applied shows FIX FORWARD (or the reversible plan) with nothing declared.

The ledger follows the world's facts as they are now (a timeline event may
apply the migration later): a baseline migration long ago, and, once
`migration_applied`, the migration named by `migration_name` installed just
before the newest revision was created, with `reversible` from
`migration_reversible` (a field Flyway itself does not have; left out when
unknown)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from console.drill.objects import format_timestamp, parse_timestamp

PREFIX = "/migrations/"
DEFAULT_MIGRATION = "0042_schema_change"


def mentions_migrations(scenario: Any) -> bool:
    """True when the scenario's facts (at the start or on its timeline) speak of a migration."""
    if scenario.facts.migration_applied or scenario.facts.migration_name:
        return True
    return any(event.facts and any(k.startswith("migration_") for k in event.facts) for event in scenario.timeline)


def ledger(world: Any, name: str) -> tuple[int, dict]:
    """(HTTP status, the Actuator flyway document) for service `name`."""
    world.advance()
    with world.store.lock:
        try:
            service = world.scenario.service(name)
        except KeyError:
            return 404, {"error": f"no service called {name!r} in this drill"}
        facts = dict(world.facts)
        created = [parse_timestamp(rs["metadata"]["creationTimestamp"])
                   for rs in world.store.list("replicasets", service.namespace)[0]
                   if (rs["metadata"].get("labels") or {}).get("app") == name
                   and rs["metadata"].get("creationTimestamp")]
        now = world.now
    newest = max(created) if created else now
    migrations: list[dict] = [{
        "type": "SQL", "version": "0001", "description": "baseline", "script": "V0001__baseline.sql",
        "state": "SUCCESS", "installedOn": format_timestamp(newest - timedelta(days=365)), "installedRank": 1,
    }]
    if facts.get("migration_applied"):
        version, _, description = str(facts.get("migration_name") or DEFAULT_MIGRATION).partition("_")
        applied = {
            "type": "SQL", "version": version, "description": description,
            "script": f"V{version}__{description}.sql", "state": "SUCCESS",
            "installedOn": format_timestamp(min(newest, now) - timedelta(seconds=30)), "installedRank": 2,
        }
        if facts.get("migration_reversible") is not None:
            applied["reversible"] = bool(facts["migration_reversible"])
        migrations.append(applied)
    return 200, {"contexts": {name: {"flywayBeans": {"flyway": {"migrations": migrations}}}}}
