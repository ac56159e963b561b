"""Rollback Console: the rollback runbook as a live, guided incident console."""

__version__ = "0.1.0"
