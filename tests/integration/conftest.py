"""Fixtures shared by the integration tests.

A real Prometheus (the Debian package `prometheus`) scraping a drill world:
`prometheus_drill` serves the world of `prometheus_scenario` (bad-deploy
unless a module overrides that fixture) at speed 1 from the wall-clock now,
starts Prometheus on 127.0.0.1 with the console's recording rules and a 1 s
scrape interval, waits until the rules produce data, and stops both after the
module. One per module: Prometheus takes a few seconds to deliver its first
values, so tests in a module share it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import require_binary

def _require_prometheus() -> None:
    require_binary("prometheus", "prometheus")


@pytest.fixture(scope="module")
def prometheus_scenario():
    """The scenario the module's Prometheus drill serves; override per module."""
    from console.drill.scenario import load_scenario

    return load_scenario("bad-deploy")


@pytest.fixture(scope="module")
def prometheus_drill(prometheus_scenario, tmp_path_factory) -> Iterator:
    """A running drill (`runner.RunningDrill`) with `.prometheus` a real
    Prometheus scraping it; `.config_path` points the console at that Prometheus."""
    _require_prometheus()
    from console.drill import runner

    running = runner.start(
        prometheus_scenario, directory=tmp_path_factory.mktemp("prometheus-drill"), with_prometheus=True
    )
    try:
        running.prometheus.wait_for_series()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def prometheus(prometheus_drill):
    """The module's running Prometheus (`prometheus_runner.RunningPrometheus`)."""
    return prometheus_drill.prometheus
