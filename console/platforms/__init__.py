"""Rollback targets. Each platform module implements `base.Platform`; import
the one you need (`console.platforms.kubernetes` ...) so start-up stays fast."""

from console.platforms.base import (
    Conflict,
    Forbidden,
    NotFound,
    Platform,
    PlatformError,
    PodInfo,
    PodLogs,
    Timeout,
    Unavailable,
)

__all__ = [
    "Conflict",
    "Forbidden",
    "NotFound",
    "Platform",
    "PlatformError",
    "PodInfo",
    "PodLogs",
    "Timeout",
    "Unavailable",
]
