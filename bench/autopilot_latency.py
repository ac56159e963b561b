"""Alert received -> PATCH at the API: how long the autopilot takes from
Alertmanager's webhook to the rollback's PATCH of the Deployment (floor 200 ms).

`python -m bench.autopilot_latency [--runs N]`. Each run: a fresh drill world
served in this process (timestamped request log) with one service on a bad
deploy, a fresh `rollback-console autopilot` subprocess on it, and one
Alertmanager v4 payload POSTed as Alertmanager would. The time runs from just
before the POST to the PATCH in the server's log; it includes the autopilot's
own refresh (it never acts on the alert's word alone), the gate's reads of the
objects' records and the lease, and the journal writes. Writes
bench/results-autopilot.json. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.common import BAD_SERVICE, ROOT, bench_env, local_drill, machine, median, scenario_data, utc_now

FLOOR_MS = 200.0
RESULTS = ROOT / "bench" / "results-autopilot.json"
TOKEN_ENV = "BENCH_AUTOPILOT_TOKEN"


def _payload(service: str) -> dict:
    return {"version": "4", "status": "firing", "receiver": "autopilot", "groupKey": "{}", "alerts": [{
        "status": "firing", "fingerprint": secrets.token_hex(8), "startsAt": utc_now().isoformat(),
        "endsAt": "0001-01-01T00:00:00Z", "annotations": {"summary": f"Auto-rollback triggered for {service}"},
        "labels": {"alertname": "AutoRollbackTrigger", "service": service, "auto_rollback": "true"}}]}


def one_run(work: Path) -> dict:
    from console.drill import alertmanager_runner, runner

    drill = local_drill(scenario_data(1, replicas=3, ready_seconds=1), work, start=utc_now().replace(microsecond=0))
    process = None
    try:
        port = alertmanager_runner.free_port()
        config = yaml.safe_load(drill.config_path.read_text())
        config["autopilot"] = {"listen": f"127.0.0.1:{port}", "token_env": TOKEN_ENV}
        drill.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        token = secrets.token_urlsafe(16)
        os.environ.update(bench_env(**{TOKEN_ENV: token}))
        process = runner.start_autopilot(drill.config_path, work / "incidents.db", work / "autopilot.log")
        # Alertmanager's connection: made before the clock starts (an httpx client loads its CA bundle).
        client = httpx.Client(timeout=10, verify=False)
        body = json.dumps(_payload(BAD_SERVICE)).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        drill.server.clear_requests()
        started = time.monotonic()
        answer = client.post(f"http://127.0.0.1:{port}/alertmanager", content=body, headers=headers)
        answered = time.monotonic()
        client.close()
        patch = None
        while patch is None and time.monotonic() < started + 30:
            patch = next((t for t, m, p, s in drill.server.timed() if m == "PATCH" and "/deployments/" in p), None)
            time.sleep(0.001)
        before = [f"{m} {p}" for t, m, p, s in drill.server.timed() if patch is None or t <= patch]
        return {"status": answer.status_code, "answered_ms": (answered - started) * 1000,
                "ms": (patch - started) * 1000 if patch else None, "requests_before_patch": before}
    finally:
        if process is not None:
            runner.stop_process(process)
        drill.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-autopilot-") as scratch:
        runs = []
        for i in range(args.runs):
            print(f"autopilot: run {i + 1} of {args.runs}", file=sys.stderr, flush=True)
            runs.append(one_run(Path(scratch) / f"run-{i}"))
    values = [r["ms"] for r in runs if r["ms"] is not None]
    result = {"machine": machine(), "floor_ms": FLOOR_MS, "median_ms": median(values),
              "max_ms": max(values) if values else None, "runs": runs}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    verdict = "met" if result["median_ms"] is not None and result["median_ms"] <= FLOOR_MS else "MISSED"
    print(f"alert received -> PATCH at the API: median {result['median_ms']:.0f} ms, max {result['max_ms']:.0f} ms "
          f"(floor {FLOOR_MS:.0f} ms: {verdict}); {len(runs[0]['requests_before_patch'])} requests before the PATCH")
    return 0


if __name__ == "__main__":
    sys.exit(main())
