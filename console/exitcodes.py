"""The command line's exit codes, shared by the CLI and the headless rollback."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
"""A configuration or usage problem, or a revision or service that does not exist."""
EXIT_DO_NOT_ROLL_BACK = 3
"""The runbook says not to roll back (fix forward, hotfix, wait for the external dependency)."""
EXIT_SIGNALS_UNAVAILABLE = 4
"""`status`: a signal the decision needs is missing or stale for at least one
service (its decision is SIGNALS UNAVAILABLE): the console cannot say it is healthy."""
