"""Signal sources: Prometheus queries and health endpoints. They do I/O and
return plain data; they never import the UI."""

# The defaults live here, not in the modules that use them, so the config
# (which makes them its defaults) does not import the network clients.
HEALTH_TIMEOUT = 2.0
"""Seconds before an unanswered health check counts as down."""
QUERY_TIMEOUT = 2.0
"""Seconds to wait for one Prometheus query before the value is reported missing."""
