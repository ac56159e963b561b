"""The ECS adapter's time and retry limits, each defined once: the adapter
(console/platforms/ecs.py) uses them as its defaults and the config as its
fields' defaults. A module of their own so that loading a config does not
import the adapter (788 lines) for four numbers (issue 17: start-up)."""

REQUEST_TIMEOUT = 10.0
"""Seconds to wait for one ECS API request (connect, and read)."""
MAX_ATTEMPTS = 5
"""Attempts per request, the first included, when AWS throttles or fails transiently."""
STABILITY_DEADLINE = 600.0
"""Seconds to wait for a service to become stable: `aws ecs wait services-stable` gives up after 40 x 15 s."""
POLL_INTERVAL = 5.0
"""Seconds between two DescribeServices calls while waiting (the aws CLI's waiter waits 15)."""
