"""kubectl's rollout status, and a rollback started after ProgressDeadlineExceeded (issue 12, item 6)."""

from __future__ import annotations

from console.platforms.kubernetes import deadline_exceeded, rollout_status


def deployment(conditions=(), generation=2, observed=2, replicas=3, updated=3, available=3) -> dict:
    return {
        "metadata": {"name": "billing-worker", "generation": generation},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": 20},
        "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated,
                   "availableReplicas": available, "conditions": list(conditions)},
    }


EXCEEDED = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "lastUpdateTime": "2026-12-04T10:00:20Z"}


def test_a_deadline_exceeded_fails_the_rollout_as_kubectl_says():
    assert rollout_status(deployment([EXCEEDED], updated=0, available=0)) == (
        'deployment "billing-worker" exceeded its progress deadline', True, True)
    assert deadline_exceeded(deployment([EXCEEDED])) == "2026-12-04T10:00:20Z"
    assert deadline_exceeded(deployment()) is None


def test_the_previous_rollouts_deadline_does_not_fail_the_rollback():
    stale = EXCEEDED["lastUpdateTime"]
    # The controller keeps the old condition until the new rollout makes progress: keep waiting.
    message, done, failed = rollout_status(deployment([EXCEEDED], updated=1, available=0), stale)
    assert (done, failed) == (False, False) and "rollout to finish" in message
    # Done as kubectl sees it once the replicas are there.
    assert rollout_status(deployment([EXCEEDED]), stale) == (
        'deployment "billing-worker" successfully rolled out', True, False)
    # A new deadline (a new lastUpdateTime) is this rollout's own: it fails.
    renewed = {**EXCEEDED, "lastUpdateTime": "2026-12-04T10:05:00Z"}
    assert rollout_status(deployment([renewed], updated=1, available=0), stale)[2] is True
