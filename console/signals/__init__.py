"""Signal sources: Prometheus queries and health endpoints. They do I/O and
return plain data; they never import the UI."""
