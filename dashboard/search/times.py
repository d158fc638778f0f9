"""The time bounds of a query: an ISO date or time, or a span back from now (`2h`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from django.utils import timezone

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
RELATIVE = re.compile(r"(\d+)([smhdw])")
HINT = "an ISO date or time (2026-12-06, 2026-12-06T10:00) or a time ago (15m, 2h, 7d)"


@dataclass(frozen=True)
class TimeBound:
    """A moment, and how the query spells it: a relative spelling ("2h") stays relative
    in the URL, so a bookmarked "last two hours" keeps meaning the last two hours."""

    moment: datetime
    text: str

    @classmethod
    def at(cls, moment: datetime, tz: tzinfo | None = None) -> TimeBound:
        """`moment` spelt in the (current) time zone without an offset, as an operator
        types it; only as precise as it needs to be."""
        local = timezone.localtime(moment, tz or timezone.get_current_timezone())
        if local.second == 0 and local.microsecond == 0:
            spec = "minutes"
        elif local.microsecond == 0:
            spec = "seconds"
        else:
            spec = "microseconds"
        return cls(moment, local.replace(tzinfo=None).isoformat(timespec=spec))


def parse_time(text: str, now: datetime, tz: tzinfo) -> TimeBound:
    """Raises ValueError (the caller names the key and the position)."""
    relative = RELATIVE.fullmatch(text.lower())
    if relative:
        amount, unit = relative.groups()
        ago = timedelta(**{UNITS[unit]: int(amount)})
        return TimeBound(now - ago, f"{amount}{unit}")
    moment = datetime.fromisoformat(text)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, tz)
    return TimeBound(moment, text)
