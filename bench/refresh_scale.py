"""How long one refresh cycle takes for many services against a real, local
Prometheus (the `prometheus` binary), on this machine.

    python bench/refresh_scale.py [--services 500] [--cycles 10]

Prometheus scrapes a synthetic /metrics with the raw counters of N services
(`http_requests_total{service,route,status}`, the latency histogram) and
evaluates the console's recording rules (console/drill/prometheus_runner.py).
Measured, with the console's real Poller:

1. metrics only, batched: the default queries, one query per signal for all
   services (plus one timestamp() query each); the first cycle also loads the
   30-minute history;
2. metrics only, one query per service (what a template that cannot be
   batched costs);
3. a full cycle: metrics + health endpoint + Kubernetes pod counts for every
   service (N platforms against the drill world's Kubernetes API), with the
   rollout history read every cycle vs every 5th cycle.

Prints a table and writes bench/results-refresh.json. Not a test: timings
depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.clock import SystemClock  # noqa: E402
from console.config import Queries  # noqa: E402
from console.drill import prometheus_runner  # noqa: E402
from console.signals.poller import SIGNALS, PollSettings, Poller, ServiceSource  # noqa: E402
from console.signals.prometheus import PrometheusClient  # noqa: E402

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RESULTS = Path(__file__).with_name("results-refresh.json")


class SyntheticMetrics:
    """Counters for N services growing with wall time at fixed rates."""

    def __init__(self, services: list[str]) -> None:
        self.services = services
        self.started = time.monotonic()

    def exposition(self) -> str:
        elapsed = time.monotonic() - self.started + 600  # as if running for 10 minutes already
        lines = ["# TYPE http_requests_total counter"]
        histogram = ["# TYPE http_request_duration_seconds histogram"]
        for index, name in enumerate(self.services):
            rate = 10.0 + index % 7
            error = 0.001 if index % 10 else 0.08
            for route, share in (("/a", 0.7), ("/b", 0.3)):
                total = rate * share * elapsed
                lines.append(f'http_requests_total{{service="{name}",route="{route}",status="200"}} {int(total * (1 - error))}')
                lines.append(f'http_requests_total{{service="{name}",route="{route}",status="500"}} {int(total * error)}')
            count = rate * elapsed
            for le, fraction in zip(BUCKETS, (0.2, 0.5, 0.9, 0.97, 0.99, 1.0)):
                histogram.append(f'http_request_duration_seconds_bucket{{service="{name}",le="{le}"}} {int(count * fraction)}')
            histogram.append(f'http_request_duration_seconds_bucket{{service="{name}",le="+Inf"}} {int(count)}')
            histogram.append(f'http_request_duration_seconds_count{{service="{name}"}} {int(count)}')
        return "\n".join(lines + histogram) + "\n"

    def serve(self) -> ThreadingHTTPServer:
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = source.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def _queries() -> dict[str, str]:
    defaults = Queries()
    return {signal: getattr(defaults, signal) for signal in SIGNALS}


async def _cycles(poller: Poller, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        snapshots = await poller.cycle()
        times.append(time.perf_counter() - started)
        bad = [s for s in snapshots if s.errors]
        if bad:
            raise SystemExit(f"cycle had errors, e.g. {bad[0].service}: {bad[0].errors[0]}")
    return times


def _row(name: str, times: list[float], note: str = "") -> dict:
    return {
        "case": name,
        "cycles": len(times),
        "median_s": round(statistics.median(times), 4),
        "max_s": round(max(times), 4),
        "min_s": round(min(times), 4),
        "note": note,
    }


async def metrics_only(prom_url: str, services: list[str], cycles: int, batched: bool) -> tuple[float, list[float], int]:
    sources = [ServiceSource(name, None, _queries()) for name in services]
    poller = Poller(sources, SystemClock(), PollSettings(), PrometheusClient(prom_url, timeout=10.0))
    if not batched:
        poller._unbatchable.update(_queries().values())  # force one query per service
    try:
        started = time.perf_counter()
        first = await poller.cycle()
        cold = time.perf_counter() - started
        points = len(first[0].metrics.error_rate_history)
        return cold, await _cycles(poller, cycles), points
    finally:
        await poller.aclose()


async def full_cycle(
    prom_url: str, services: list[str], cycles: int, every: int, drill: dict, pods: bool = True, health: bool = True
) -> list[float]:
    from console.platforms.kubernetes import KubernetesPlatform

    sources = []
    for name in services:
        # Every platform reads the drill's one deployment: the API cost per service is what counts.
        platform_ = KubernetesPlatform(
            service="order-service", namespace="shop", deployment="order-service",
            kubeconfig=drill["kubeconfig"], context="drill", timeout=10.0, clock=SystemClock(),
        ) if pods else None
        url = f"{drill['url']}/health/order-service" if health else None
        sources.append(ServiceSource(name, platform_, _queries(), health_url=url))
    settings = PollSettings(rollout_history_every=every, max_concurrency=32)
    poller = Poller(sources, SystemClock(), settings, PrometheusClient(prom_url, timeout=10.0))
    try:
        await poller.cycle()  # cold: history loads, first rollout history reads
        return await _cycles(poller, cycles)
    finally:
        await poller.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--skip-platforms", action="store_true", help="Measure the metrics cases only.")
    args = parser.parse_args()
    if prometheus_runner.find_binary() is None:
        raise SystemExit("the prometheus binary is not installed (scripts/system-deps.sh installs it)")

    names = [f"svc-{i:04d}" for i in range(args.services)]
    synthetic = SyntheticMetrics(names)
    server = synthetic.serve()
    prom = prometheus_runner.start(f"http://127.0.0.1:{server.server_address[1]}/metrics")
    rows: list[dict] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answer = httpx.get(f"{prom.url}/api/v1/query", params={"query": "count(service:latency_p95:seconds)"}).json()
            result = answer["data"]["result"]
            if result and int(float(result[0]["value"][1])) == args.services:
                break
            time.sleep(0.5)
        else:
            raise SystemExit("Prometheus did not produce series for every service within 60 s")
        time.sleep(3)

        cold, warm, points = asyncio.run(metrics_only(prom.url, names, args.cycles, batched=True))
        rows.append(_row("metrics, batched: first cycle", [cold], f"loads the history ({points} points per sparkline)"))
        rows.append(_row("metrics, batched", warm, "8 queries per cycle for all services"))
        cold, warm, _ = asyncio.run(metrics_only(prom.url, names, min(args.cycles, 3), batched=False))
        rows.append(_row("metrics, one query per service", warm, f"{len(names) * 8} queries per cycle"))
        if not args.skip_platforms:
            # The drill in its own process, as a Kubernetes API server would be.
            with tempfile.TemporaryDirectory() as directory:
                process = subprocess.Popen(
                    [sys.executable, "-m", "console.cli", "drill", "bad-deploy", "--serve-only", "--write-config", directory],
                    stdout=subprocess.PIPE, text=True,
                )
                try:
                    url = ""
                    for line in process.stdout:  # type: ignore[union-attr]
                        if line.startswith("drill ") and " serving at " in line:
                            url = line.rsplit(" ", 1)[-1].strip()
                        if line.strip() == "ready":
                            break
                    drill = {"url": url, "kubeconfig": str(Path(directory) / "kubeconfig")}
                    for every in (1, 5):
                        times = asyncio.run(full_cycle(prom.url, names, args.cycles, every, drill))
                        rows.append(_row(f"full cycle, rollout history every {every}", times,
                                         "metrics + health endpoint + pod counts per service"))
                    times = asyncio.run(full_cycle(prom.url, names, args.cycles, 5, drill, pods=False))
                    rows.append(_row("metrics + health endpoints", times, "no platform calls"))
                    times = asyncio.run(full_cycle(prom.url, names, args.cycles, 5, drill, health=False))
                    rows.append(_row("metrics + pod counts, history every 5", times, "no health endpoints"))
                finally:
                    process.terminate()
                    process.wait(timeout=10)
    finally:
        prom.close()
        server.shutdown()

    width = max(len(r["case"]) for r in rows)
    print(f"{args.services} services, {os.cpu_count()} CPUs, Prometheus at 127.0.0.1")
    print(f"{'case':<{width}}  cycles  median s   max s  note")
    for r in rows:
        print(f"{r['case']:<{width}}  {r['cycles']:>6}  {r['median_s']:>8.3f}  {r['max_s']:>6.3f}  {r['note']}")
    RESULTS.write_text(json.dumps({
        "services": args.services,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
    }, indent=2) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
