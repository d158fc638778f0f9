"""Template filters the dashboard's pages share: JSON, durations, relative times, percents.

`{% load dashboard_tags %}`. Every filter returns plain text for Django's autoescape,
except `ago`, which builds its <time> element with format_html (which escapes its
arguments): nothing here marks a job's own data as safe.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from tasks.conf import layer_settings

register = template.Library()

MISSING = "—"


@register.filter
def pretty_json(value: Any) -> str:
    """`value` as indented JSON with sorted keys, for <pre class="code">.

    `default=str` so a datetime or Decimal in a result shows instead of raising; keys
    of mixed types (which JSON stored rows never have) cannot be sorted and stay as
    they are rather than fail the page.
    """
    try:
        return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    except TypeError:
        return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def _seconds(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


@register.filter
def duration(value: Any) -> str:
    """Seconds (or a timedelta) in the unit a person reads at a glance.

    850 ms, 12.3 s, 4 min 5 s, 2 h 3 min, 3 d 4 h. A negative value (a wait time across
    clocks that disagree) keeps its sign rather than pretend to be zero.
    """
    seconds = _seconds(value)
    if seconds is None:
        return MISSING
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{sign}<1 ms" if millis == 0 and seconds > 0 else f"{sign}{millis} ms"
    if round(seconds, 1) < 60:
        return f"{sign}{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        minutes, secs = divmod(whole, 60)
        return f"{sign}{minutes} min {secs} s" if secs else f"{sign}{minutes} min"
    if whole < 86400:
        hours, rest = divmod(whole, 3600)
        minutes = rest // 60
        return f"{sign}{hours} h {minutes} min" if minutes else f"{sign}{hours} h"
    days, rest = divmod(whole, 86400)
    hours = rest // 3600
    return f"{sign}{days} d {hours} h" if hours else f"{sign}{days} d"


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


@register.filter
def ago(value: Any) -> SafeString | str:
    """A <time> reading "5 min ago" (or "in 3 min" for a due time) with the exact time.

    The exact ISO time (in the current time zone) is the title and datetime attribute,
    so hovering answers "when exactly" without a second column.
    """
    if not isinstance(value, datetime):
        return MISSING if value in (None, "") else str(value)
    now = timezone.now()
    if timezone.is_aware(now) and timezone.is_naive(value):
        value = timezone.make_aware(value)
    elif timezone.is_naive(now) and timezone.is_aware(value):
        value = timezone.make_naive(value)
    delta = (now - value).total_seconds()
    if abs(delta) < 1:
        text = "just now"
    elif delta > 0:
        text = f"{_span(delta)} ago"
    else:
        text = f"in {_span(-delta)}"
    shown = timezone.localtime(value) if timezone.is_aware(value) else value
    iso = shown.isoformat(timespec="seconds")
    return format_html('<time datetime="{}" title="{}">{}</time>', iso, iso, text)


@register.filter
def clamp_percent(value: Any) -> int | None:
    """0..100 as an int for the progress bar; None when there is no number to show."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return max(0, min(100, round(number)))


@register.simple_tag
def flower_url() -> str:
    """Where the nav's Flower link points (TASKS_FLOWER_URL; '' for no link)."""
    return layer_settings().flower_url
