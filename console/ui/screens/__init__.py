"""Modal screens: rollback confirmation, quit confirmation, notes."""
