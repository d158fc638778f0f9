"""The filter selecting the tally rows of a span (dashboard.read.windows.Span).

Each range is `period = p AND start >= a AND start < b`: a range of the tallies' unique
index (period, start, ...), so a 30-day window reads its 720 hours of rows and nothing
else. Used for JobTally and TimingTally, whose rows have the same (period, start) key.
"""

from __future__ import annotations

from django.db.models import Q

from dashboard.read.windows import Span


def in_span(span: Span) -> Q:
    """Rows of the span's ranges (OR of index ranges; each job counted once)."""
    if not span.ranges:
        return Q(pk__in=[])
    condition = Q()
    for part in span.ranges:
        condition |= Q(period=part.period, start__gte=part.start, start__lt=part.end)
    return condition
