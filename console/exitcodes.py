"""The command line's exit codes, shared by the CLI and the headless rollback."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
"""A configuration or usage problem, or a revision or service that does not exist."""
EXIT_DO_NOT_ROLL_BACK = 3
"""The rollback gate refuses (console/gate.py): the runbook does not say ROLLBACK NOW, the target
was rolled back from or never became ready, a migration is in the way, or another console is
rolling the service back. `--force` with a reason (and `--approved-by` where configured) overrides
what an override may pass."""
EXIT_SIGNALS_UNAVAILABLE = 4
"""`status`: a signal the decision needs is missing or stale for at least one
service (its decision is SIGNALS UNAVAILABLE): the console cannot say it is healthy."""
