"""The runbook's automated rollback trigger: Alertmanager webhook -> the
autopilot's own limits -> the gate -> the headless rollback procedure,
leader-elected through a Kubernetes Lease (README "Autopilot")."""
