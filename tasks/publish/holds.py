"""Jobs held for later: an ETA further away than TASKS_HOLD_AFTER waits in the database.

On Redis a message waiting for its ETA sits on a worker as "unacked", and kombu gives
it to another worker every visibility timeout, so it would run several times (celery
#2599, #3270, #4766). Such a job is kept in the outbox table and published
TASKS_HOLD_LEAD seconds before its ETA, keeping the original ETA.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tasks.publish.config import settings_now


def eta_of(options: Mapping[str, Any], now: datetime) -> datetime | None:
    """The absolute ETA that `countdown` or `eta` in apply_async options stand for."""
    eta = options.get("eta")
    if eta is not None:
        if isinstance(eta, str):
            eta = parse_datetime(eta)
        if isinstance(eta, datetime):
            return eta if timezone.is_aware(eta) else timezone.make_aware(eta, UTC)
        return None
    countdown = options.get("countdown")
    if countdown:
        return now + timedelta(seconds=float(countdown))
    return None


def hold_until(eta: datetime | None, now: datetime) -> datetime | None:
    """When to publish a job with this ETA, or None to publish it now."""
    if eta is None:
        return None
    config = settings_now()
    if (eta - now).total_seconds() <= config.hold_after:
        return None
    return eta - timedelta(seconds=config.hold_lead)
