"""What one round of health checks (N GETs of a health endpoint, bounded
concurrency) costs with different HTTP clients, on this machine.

    python bench/health_clients.py [--checks 500] [--rounds 5]

Two servers, each in its own process so its CPU is not the client's:

- `peer`: a tiny asyncio HTTP/1.1 server that answers every GET with
  `{"status":"healthy"}` and keeps the connection alive: nearly free, so the
  time measured is the console's own cost per check;
- `drill`: the drill world's server (`drill bad-deploy --serve-only`), a
  ThreadingHTTPServer: what the benchmarks and the tests talk to.

Clients: httpx.AsyncClient (what the poller used), bare aiohttp, and the
console's check (signals/health.py on aiohttp). For each: wall time of a round,
the client process's CPU time for it, at several concurrency bounds.
Prints a table and writes bench/results-health.json. Not a test.
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
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).with_name("results-health.json")

PEER = r'''
import asyncio, sys
BODY = b'{"status":"healthy"}'
REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
         + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(REPLY)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
'''


def start_peer() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", PEER], stdout=subprocess.PIPE, text=True)
    port = process.stdout.readline().strip()  # type: ignore[union-attr]
    return process, f"http://127.0.0.1:{port}/health/order-service"


def start_drill(directory: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "console", "drill", "bad-deploy", "--serve-only", "--write-config", directory],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    url = ""
    for line in process.stdout:  # type: ignore[union-attr]
        if " serving at " in line:
            url = line.rsplit(" ", 1)[-1].strip()
        if line.strip() == "ready":
            break
    return process, f"{url}/health/order-service"


async def with_httpx(url: str, checks: int, bound: int, rounds: int) -> list[tuple[float, float]]:
    import httpx

    limits = httpx.Limits(max_connections=bound, max_keepalive_connections=bound)
    async with httpx.AsyncClient(limits=limits) as client:
        sem = asyncio.Semaphore(bound)

        async def one():
            # What signals/health.py did before (httpx, whole exchange bounded).
            async with sem:
                async with asyncio.timeout(5.0):
                    response = await client.get(url, timeout=5.0, headers={"Accept": "application/json"})
                response.json()

        return await _rounds(lambda: asyncio.gather(*(one() for _ in range(checks))), rounds)


async def with_aiohttp(url: str, checks: int, bound: int, rounds: int) -> list[tuple[float, float]]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=bound)) as session:
        sem = asyncio.Semaphore(bound)

        async def one():
            async with sem:
                async with asyncio.timeout(5.0):
                    async with session.get(url, headers={"Accept": "application/json"}) as response:
                        body = await response.read()
                        json.loads(body)

        return await _rounds(lambda: asyncio.gather(*(one() for _ in range(checks))), rounds)


async def with_console(url: str, checks: int, bound: int, rounds: int) -> list[tuple[float, float]]:
    """What the poller does now: signals.health.check over its pooled aiohttp session."""
    from console.signals import health

    session = health.new_session(bound)
    try:
        sem = asyncio.Semaphore(bound)

        async def one():
            async with sem:
                result = await health.check(session, url, timeout=5.0)
                assert result.latency_ms is not None, result

        return await _rounds(lambda: asyncio.gather(*(one() for _ in range(checks))), rounds)
    finally:
        await session.close()


async def _rounds(make, rounds: int) -> list[tuple[float, float]]:
    await make()  # warm: connections open
    out = []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        await make()
        out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


CLIENTS = {"httpx": with_httpx, "aiohttp": with_aiohttp, "console": with_console}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bounds", default="8,32,64")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        servers = [("peer", *start_peer()), ("drill", *start_drill(directory))]
        try:
            for server, _process, url in servers:
                for name in args.clients.split(","):
                    for bound in [int(b) for b in args.bounds.split(",")]:
                        times = asyncio.run(CLIENTS[name](url, args.checks, bound, args.rounds))
                        row = {
                            "server": server, "client": name, "bound": bound, "checks": args.checks,
                            "median_wall_s": round(statistics.median(t[0] for t in times), 4),
                            "median_client_cpu_s": round(statistics.median(t[1] for t in times), 4),
                            "min_wall_s": round(min(t[0] for t in times), 4),
                        }
                        rows.append(row)
                        print(f"{server:5}  {name:8} bound {bound:3}  wall {row['median_wall_s']:.3f} s  "
                              f"client cpu {row['median_client_cpu_s']:.3f} s  (min wall {row['min_wall_s']:.3f})", flush=True)
        finally:
            for _server, process, _url in servers:
                process.terminate()
                process.wait(timeout=10)
    RESULTS.write_text(json.dumps({
        "checks": args.checks, "rounds": args.rounds, "cpus": os.cpu_count(), "python": platform.python_version(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": rows,
    }, indent=2) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
