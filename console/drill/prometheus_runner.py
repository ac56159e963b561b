"""A real Prometheus (the `prometheus` binary, Debian package `prometheus`)
scraping a drill world's `/metrics`, with the recording rules the console's
default queries read. Used by `drill --with-prometheus` and by the tests.

The rules compute the console's series from the raw counters the drill
exposes, exactly as a production setup would:

    service:request_rate:rps            sum by (service) (rate(http_requests_total[W]))
    service:error_rate:ratio            5xx rate / all requests, by service
    service_route:error_rate:ratio      the same by (service, route)
    service:latency_p95:seconds         histogram_quantile(0.95, ... by (service, le))

The drill's traffic model changes every 15 simulated seconds, so a short
scrape interval and rate window keep Prometheus close to the world without
hiding changes (an intermittent error wave) behind a long average.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import httpx
import yaml

SCRAPE_SECONDS = 1.0
"""How often the drill's Prometheus scrapes and evaluates its rules."""
SCRAPE_INTERVAL = f"{SCRAPE_SECONDS:g}s"
"""How often the drill's Prometheus scrapes /metrics and evaluates the rules."""
RATE_WINDOW = "10s"
"""The rate() window of the recording rules: ten scrapes, shorter than the
world's 15-second traffic steps so that changes show within seconds."""
READY_TIMEOUT = 30.0
"""Seconds to wait for Prometheus to answer /-/ready after it starts."""
STOP_TIMEOUT = 10.0
"""Seconds to wait for Prometheus to exit after SIGTERM before killing it."""
ALERT_RESEND_DELAY = "2s"
"""How often the drill's Prometheus re-sends firing alerts to its Alertmanager."""
RULES_FILE = "rollback-console.rules.yaml"
CONFIG_FILE = "prometheus.yaml"


class PrometheusUnavailable(Exception):
    """Prometheus could not be started; str() says why and what to do."""


def recording_rules(window: str = RATE_WINDOW, interval: str = SCRAPE_INTERVAL) -> dict:
    """The recording rules (as data) that turn the raw request counters and
    latency histogram into the series the console's default queries read."""
    requests = f"rate(http_requests_total[{window}])"
    failed = f'rate(http_requests_total{{status=~"5.."}}[{window}])'

    def ratio(by: str) -> str:
        # `or ... * 0`: a service without any 5xx series yet has rate 0, not "no data".
        return f"(sum by ({by}) ({failed}) or sum by ({by}) ({requests}) * 0) / sum by ({by}) ({requests})"

    return {
        "groups": [
            {
                "name": "rollback-console",
                "interval": interval,
                "rules": [
                    {"record": "service:request_rate:rps", "expr": f"sum by (service) ({requests})"},
                    {"record": "service:error_rate:ratio", "expr": ratio("service")},
                    {"record": "service_route:error_rate:ratio", "expr": ratio("service, route")},
                    {
                        "record": "service:latency_p95:seconds",
                        "expr": "histogram_quantile(0.95, sum by (service, le) "
                        f"(rate(http_request_duration_seconds_bucket[{window}])))",
                    },
                ],
            }
        ]
    }


def prometheus_config(target_url: str, rules_path: Path, interval: str = SCRAPE_INTERVAL,
                      alertmanager_url: str | None = None, alert_rules_path: Path | None = None) -> dict:
    """A prometheus.yml (as data) scraping `target_url` (e.g. http://127.0.0.1:PORT/metrics);
    with `alertmanager_url`, its alerts (`alert_rules_path`) go to that Alertmanager."""
    parts = urlsplit(target_url)
    alerting = {}
    if alertmanager_url:
        alerting = {"alerting": {"alertmanagers": [{"static_configs": [{"targets": [urlsplit(alertmanager_url).netloc]}]}]}}
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": [str(rules_path)] + ([str(alert_rules_path)] if alert_rules_path else []),
        **alerting,
        "scrape_configs": [
            {
                "job_name": "drill",
                "scheme": parts.scheme or "http",
                "metrics_path": parts.path or "/metrics",
                "static_configs": [{"targets": [parts.netloc]}],
            }
        ],
    }


def write_files(directory: Path, target_url: str, window: str = RATE_WINDOW, interval: str = SCRAPE_INTERVAL,
                alertmanager_url: str | None = None) -> Path:
    """Write DIR/prometheus.yaml and DIR/rollback-console.rules.yaml (and, with
    `alertmanager_url`, the runbook's AutoRollbackTrigger rules); returns the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    rules = directory / RULES_FILE
    rules.write_text(yaml.safe_dump(recording_rules(window, interval), sort_keys=False))
    alert_rules_path = None
    if alertmanager_url:
        from console.drill.alertmanager_runner import ALERT_RULES_FILE, auto_rollback_rules

        alert_rules_path = directory / ALERT_RULES_FILE
        alert_rules_path.write_text(yaml.safe_dump(auto_rollback_rules(interval), sort_keys=False))
    config = directory / CONFIG_FILE
    config.write_text(yaml.safe_dump(
        prometheus_config(target_url, rules, interval, alertmanager_url, alert_rules_path), sort_keys=False))
    return config


def find_binary() -> str | None:
    """Path of the `prometheus` binary, or None when it is not installed."""
    return shutil.which("prometheus")


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait `timeout` s, SIGKILL if it will not go (a drill's Prometheus,
    Alertmanager or autopilot)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningServer:
    """A server the drill starts by hand on 127.0.0.1 (Prometheus, Alertmanager):
    its process, port, files and data. Subclasses say how to start it."""

    NAME: ClassVar[str] = "The server"
    LOG_FILE: ClassVar[str] = "server.log"
    UNAVAILABLE: ClassVar[type[Exception]] = RuntimeError

    directory: Path
    config_path: Path
    port: int
    binary: str
    process: subprocess.Popen | None = None
    _owned_dir: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """Base URL of its HTTP API (what the console's `prometheus.url` takes, for Prometheus)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / self.LOG_FILE

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _wait_ready(self, timeout: float) -> None:
        """Wait until it answers /-/ready; UNAVAILABLE, naming the log, when it exits or takes too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise self.UNAVAILABLE(
                    f"{self.NAME} exited at start (code {self.process.returncode}); see {self.log_path}."
                )
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise self.UNAVAILABLE(f"{self.NAME} did not become ready within {timeout:.0f} s; see {self.log_path}.")

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if it will not go. The data stays for a restart."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, STOP_TIMEOUT)

    def close(self) -> None:
        """Stop, and remove the directory when this object created it."""
        self.stop()
        if self._owned_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class RunningPrometheus(RunningServer):
    """One Prometheus process on 127.0.0.1, its files and its data."""

    NAME: ClassVar[str] = "Prometheus"
    LOG_FILE: ClassVar[str] = "prometheus.log"
    UNAVAILABLE: ClassVar[type[Exception]] = PrometheusUnavailable

    extra_args: tuple[str, ...] = ()

    def start(self, ready_timeout: float = READY_TIMEOUT) -> RunningPrometheus:
        """Start the process (again, on the same port and data, after `stop()`)
        and wait until it answers /-/ready."""
        if self.running:
            return self
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    "--log.level=warn",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        self._wait_ready(ready_timeout)
        return self

    def wait_for_series(self, query: str = "service:error_rate:ratio", timeout: float = 30.0) -> None:
        """Block until `query` returns at least one series (the first rule evaluations)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=1.0).json()
                if body.get("data", {}).get("result"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise PrometheusUnavailable(f"Prometheus returned no data for {query} within {timeout:.0f} s; see {self.log_path}.")


def start(
    target_url: str,
    directory: Path | None = None,
    *,
    window: str = RATE_WINDOW,
    interval: str = SCRAPE_INTERVAL,
    port: int | None = None,
    ready_timeout: float = READY_TIMEOUT,
    alertmanager_url: str | None = None,
) -> RunningPrometheus:
    """Start Prometheus scraping `target_url` (a /metrics URL), its config,
    rules and data under `directory` (a temporary one by default); with
    `alertmanager_url`, evaluating the AutoRollbackTrigger rules and sending
    their alerts there."""
    binary = find_binary()
    if binary is None:
        raise PrometheusUnavailable(
            "The prometheus binary is not installed; install the Debian package `prometheus` "
            "(scripts/system-deps.sh does) or run the drill without --with-prometheus."
        )
    owned = directory is None
    directory = Path(tempfile.mkdtemp(prefix="rollback-prometheus-")) if directory is None else directory
    config = write_files(directory, target_url, window, interval, alertmanager_url)
    # Firing alerts are re-sent every ALERT_RESEND_DELAY (Prometheus's default: 1m), so a restarted
    # Alertmanager hears of them again within seconds.
    extra = (f"--rules.alert.resend-delay={ALERT_RESEND_DELAY}",) if alertmanager_url else ()
    running = RunningPrometheus(directory, config, port or _free_port(), binary, _owned_dir=owned, extra_args=extra)
    try:
        return running.start(ready_timeout)
    except BaseException:
        running.close()
        raise
