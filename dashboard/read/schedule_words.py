"""Beat's schedules in words: "Every 5 minutes", "At 09:00, Monday to Friday".

Pure functions, no database. A crontab is read through Celery's own parser (the sets
of minutes, hours, days it matches, exactly what beat will use), then described when it
has a common shape; any other shape falls back to its five fields, which are exact.
django-celery-beat's `human_readable` uses cron-descriptor, which reads cron's rules
rather than Celery's (Sunday as 7, day of month OR day of week) and raises on fields
Celery parses differently; this one says what Celery will do, or shows the fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from celery import schedules

DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
#: Monday first, Sunday last: how a week is read for ranges ("Monday to Friday").
WEEK_ORDER = (1, 2, 3, 4, 5, 6, 0)
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
#: Up to this many listed times ("at 08:00, 12:00 and 20:00"); more fall back.
MAX_LISTED = 6

PERIODS = {
    "days": ("day", "days"),
    "hours": ("hour", "hours"),
    "minutes": ("minute", "minutes"),
    "seconds": ("second", "seconds"),
    "microseconds": ("microsecond", "microseconds"),
}


def interval(every: int, period: str) -> str:
    """`IntervalSchedule`: "Every 5 seconds", "Every minute"."""
    one, many = PERIODS.get(period, (period.rstrip("s"), period))
    return f"Every {one}" if every == 1 else f"Every {every} {many}"


def solar(event_label: str, latitude: Decimal | float, longitude: Decimal | float) -> str:
    """`SolarSchedule`: "At sunrise (51.5074, -0.1278)"."""
    return f"At {event_label.lower()} ({_coordinate(latitude)}, {_coordinate(longitude)})"


def clocked(moment: datetime) -> str:
    """`ClockedSchedule`: once, at a moment (shown in the zone it carries)."""
    return f"Once at {moment:%Y-%m-%d %H:%M} {moment.tzname() or ''}".rstrip()


def crontab_fields(
    minute: str, hour: str, day_of_month: str, month_of_year: str, day_of_week: str
) -> str:
    """The five fields, cron's order: "*/5 * * * *"."""
    return " ".join(
        (field or "*").replace(" ", "")
        for field in (minute, hour, day_of_month, month_of_year, day_of_week)
    )


def crontab(
    minute: str = "*",
    hour: str = "*",
    day_of_month: str = "*",
    month_of_year: str = "*",
    day_of_week: str = "*",
) -> str:
    """A crontab in words when its shape is common, else "Cron m h dom mon dow"."""
    fields = crontab_fields(minute, hour, day_of_month, month_of_year, day_of_week)
    try:
        parsed: Any = schedules.crontab(
            minute=minute or "*",
            hour=hour or "*",
            day_of_month=day_of_month or "*",
            month_of_year=month_of_year or "*",
            day_of_week=day_of_week or "*",
        )
    except Exception:  # ValueError, or Celery's ParseException (not a ValueError)
        return f"Cron {fields} (Celery cannot read it: it never runs)"
    time = _time_phrase(sorted(parsed.minute), sorted(parsed.hour))
    days = _day_phrase(
        sorted(parsed.day_of_month), sorted(parsed.month_of_year), sorted(parsed.day_of_week)
    )
    if time is None or days is None:
        return f"Cron {fields}"
    if not days:
        return _capital(f"every day {time}" if time.startswith("at ") else time)
    return _capital(f"{time}, {days}")


# --- time of day ----------------------------------------------------------------------


def _time_phrase(minutes: list[int], hours: list[int]) -> str | None:
    all_minutes, all_hours = len(minutes) == 60, len(hours) == 24
    minute_step = _step_from_zero(minutes, 60)
    hour_step = _step_from_zero(hours, 24)
    if all_minutes or minute_step:
        often = "every minute" if all_minutes else f"every {minute_step} minutes"
        if all_hours:
            return often
        window = _hour_window(hours)
        return f"{often} {window}" if window else None
    # A few given minutes of some hours.
    if len(minutes) > MAX_LISTED:
        return None
    past = _and([f":{m:02d}" for m in minutes])
    if all_hours:
        return f"every hour at {past}"
    if hour_step:
        return f"every {hour_step} hours at {past}"
    if len(minutes) * len(hours) <= MAX_LISTED:
        return "at " + _and([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    run = _contiguous(hours)
    if run is not None:
        first, last = run
        return f"every hour at {past} from {first:02d}:00 to {last:02d}:59"
    return None


def _hour_window(hours: list[int]) -> str | None:
    run = _contiguous(hours)
    if run is not None:
        first, last = run
        return f"from {first:02d}:00 to {last:02d}:59"
    if len(hours) <= MAX_LISTED:
        return "in the hours starting " + _and([f"{h:02d}:00" for h in hours])
    return None


def _step_from_zero(values: list[int], size: int) -> int | None:
    """N when `values` is 0, N, 2N, ... (every N, N > 1, dividing `size` evenly)."""
    if len(values) < 2 or values[0] != 0:
        return None
    step = values[1]
    if size % step or values != list(range(0, size, step)):
        return None
    return step


def _contiguous(values: Sequence[int]) -> tuple[int, int] | None:
    if values and list(values) == list(range(values[0], values[-1] + 1)):
        return values[0], values[-1]
    return None


# --- days ---------------------------------------------------------------------------


def _day_phrase(days: list[int], months: list[int], weekdays: list[int]) -> str | None:
    """ "" for every day; None for a shape not described (day of month and of week)."""
    any_day, any_month, any_weekday = len(days) == 31, len(months) == 12, len(weekdays) == 7
    in_months = "" if any_month else _months(months)
    if in_months is None:
        return None
    if not any_day and not any_weekday:
        return None  # Celery wants both to match: rare, and easy to misread
    if not any_weekday:
        week = _weekdays(weekdays)
        return f"{week} in {in_months}" if in_months else week
    if not any_day:
        if len(days) > MAX_LISTED:
            return None
        dates = _and([_ordinal(d) for d in days])
        if in_months:
            return f"on the {dates} of {in_months}"
        return f"on the {dates} of every month"
    return f"every day in {in_months}" if in_months else ""


def _weekdays(weekdays: list[int]) -> str:
    ordered = [d for d in WEEK_ORDER if d in weekdays]
    positions = [WEEK_ORDER.index(d) for d in ordered]
    if len(ordered) >= 3 and positions == list(range(positions[0], positions[-1] + 1)):
        return f"{DAY_NAMES[ordered[0]]} to {DAY_NAMES[ordered[-1]]}"
    if len(ordered) == 1:
        return f"on {DAY_NAMES[ordered[0]]}s"
    return "on " + _and([DAY_NAMES[d] for d in ordered])


def _months(months: list[int]) -> str | None:
    run = _contiguous(months)
    if run is not None and len(months) >= 3:
        return f"{MONTH_NAMES[run[0] - 1]} to {MONTH_NAMES[run[1] - 1]}"
    if len(months) <= MAX_LISTED:
        return _and([MONTH_NAMES[m - 1] for m in months])
    return None


# --- words ----------------------------------------------------------------------------


def _and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _coordinate(value: Decimal | float) -> str:
    return f"{float(value):.4f}".rstrip("0").rstrip(".")
