"""The drill world: a simulated cluster, its traffic and metrics, served over
HTTP so the console's real adapters (and kubectl) run against it unchanged.

- `scenario`: YAML scenario files, validated (`load_scenario`, `list_scenarios`).
- `world`: the simulation (`World`), controllers and traffic model.
- `objects`, `kube_api`: the Kubernetes object store and REST API.
- `prom_api`: the Prometheus query API and /metrics.
- `server`: the one HTTP server (`DrillServer`) and `write_kubeconfig`.
"""
