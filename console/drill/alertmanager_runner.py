"""A real Alertmanager (Debian package `prometheus-alertmanager`), started by
hand like the drill's Prometheus, routing the runbook's AutoRollbackTrigger
to the autopilot. Used by `drill --with-alertmanager` and by the tests.

The rules ship in two forms, both loaded:

- the runbook's, as written: `rate(http_requests_total{status=~"5.."}[2m]) > 0.1`
  for 2m, an absolute rate of 5xx per second per series, which says nothing
  about how many requests a service handles (0.1/s is 0.1 % of a busy
  service and all of a quiet one) and waits two minutes;
- a ratio form beside it, the one the drill relies on: the share of requests
  failing, `service:error_rate:ratio > 0.05` (the runbook's own "Error rate
  > 5%" rollback row, from the recording rules), with `for:` shortened from
  the runbook's 2m to `RATIO_FOR` so that a drill acts within a minute.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx
import yaml

from console.drill.prometheus_runner import SCRAPE_INTERVAL, RunningServer, _free_port

ALERT_RULES_FILE = "auto-rollback.rules.yaml"
CONFIG_FILE = "alertmanager.yaml"
TOKEN_FILE = "autopilot-token"
RATIO_FOR = "10s"
"""The ratio rule's `for:` in drills: 12 times shorter than the runbook's 2m."""
RATIO_THRESHOLD = 0.05
"""The runbook's "Error rate > 5%": rollback now."""
READY_TIMEOUT = 30.0
GROUP_WAIT = "1s"
GROUP_INTERVAL = "2s"
REPEAT_INTERVAL = "1m"
"""Alertmanager re-sends a firing alert this often (the autopilot must not act twice)."""

_ANNOTATIONS = {
    "summary": "Auto-rollback triggered for {{ $labels.service }}",
    "runbook": "https://runbook.example.com/auto-rollback",
}


class AlertmanagerUnavailable(Exception):
    """Alertmanager could not be started; str() says why and what to do."""


def auto_rollback_rules(interval: str = SCRAPE_INTERVAL) -> dict:
    """The runbook's AutoRollbackTrigger as written, and its ratio form (see the module docstring)."""
    return {
        "groups": [
            {
                "name": "runbook-auto-rollback",
                "rules": [{
                    "alert": "AutoRollbackTrigger",
                    "expr": 'rate(http_requests_total{status=~"5.."}[2m]) > 0.1',
                    "for": "2m",
                    "labels": {"severity": "critical", "auto_rollback": "true"},
                    "annotations": dict(_ANNOTATIONS),
                }],
            },
            {
                "name": "auto-rollback-ratio",
                "interval": interval,
                "rules": [{
                    "alert": "AutoRollbackTrigger",
                    "expr": f"service:error_rate:ratio > {RATIO_THRESHOLD}",
                    "for": RATIO_FOR,
                    "labels": {"severity": "critical", "auto_rollback": "true", "form": "ratio"},
                    "annotations": dict(_ANNOTATIONS),
                }],
            },
        ]
    }


def alertmanager_config(autopilot_urls: list[str], token_file: Path) -> dict:
    """An alertmanager.yml (as data): every alert to the autopilot(s), the token from a file."""
    return {
        "route": {
            "receiver": "autopilot",
            "group_by": ["alertname", "service", "namespace"],
            "group_wait": GROUP_WAIT,
            "group_interval": GROUP_INTERVAL,
            "repeat_interval": REPEAT_INTERVAL,
        },
        "receivers": [{
            "name": "autopilot",
            "webhook_configs": [{
                "url": url,
                "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}},
            } for url in autopilot_urls],
        }],
    }


def find_binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@dataclass
class RunningAlertmanager(RunningServer):
    """One Alertmanager on 127.0.0.1 (gossip off), its files and its data."""

    NAME: ClassVar[str] = "Alertmanager"
    LOG_FILE: ClassVar[str] = "alertmanager.log"
    UNAVAILABLE: ClassVar[type[Exception]] = AlertmanagerUnavailable

    def start(self, ready_timeout: float = READY_TIMEOUT) -> RunningAlertmanager:
        """Start (again, on the same port and data, after `stop()`) and wait for /-/ready."""
        if self.running:
            return self
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={self.config_path}", f"--storage.path={data}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self._wait_ready(ready_timeout)
        return self

    def alerts(self) -> list[dict]:
        """The alerts it holds now (its v2 API)."""
        return httpx.get(f"{self.url}/api/v2/alerts", timeout=5.0).json()


def free_port() -> int:
    """A free port on 127.0.0.1 (for the autopilot the Alertmanager config names)."""
    return _free_port()


def start(autopilot_urls: list[str], token: str, directory: Path | None = None, *, port: int | None = None,
          ready_timeout: float = READY_TIMEOUT) -> RunningAlertmanager:
    """Start Alertmanager routing every alert to `autopilot_urls` with `token`
    (written to DIR/autopilot-token, mode 600, never into the config)."""
    binary = find_binary()
    if binary is None:
        raise AlertmanagerUnavailable(
            "The prometheus-alertmanager binary is not installed; install the Debian package "
            "`prometheus-alertmanager` (scripts/system-deps.sh does) or run the drill without --with-alertmanager.")
    owned = directory is None
    directory = Path(tempfile.mkdtemp(prefix="rollback-alertmanager-")) if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / TOKEN_FILE
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    config = directory / CONFIG_FILE
    config.write_text(yaml.safe_dump(alertmanager_config(autopilot_urls, token_file), sort_keys=False))
    running = RunningAlertmanager(directory, config, port or _free_port(), binary, _owned_dir=owned)
    try:
        return running.start(ready_timeout)
    except BaseException:
        running.close()
        raise
