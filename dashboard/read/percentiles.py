"""Percentiles estimated from a histogram of durations (tasks.observations.TimingTally).

The recorder keeps, per task and minute or hour, how many jobs ran (or waited) within
each of a fixed set of bucket bounds; it keeps no individual durations, which is what
lets a 30-day percentile read a few thousand rows. The price is that a percentile is an
estimate: we find the bucket holding the wanted rank and interpolate linearly inside it,
assuming the jobs are spread evenly between its bounds. The true value always lies
between the bucket's bounds, which are returned with the estimate so a page can say so.

Pure: no Django, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Estimate:
    """A percentile in milliseconds, and the bucket bounds the true value lies within."""

    ms: float
    low_ms: float
    high_ms: float

    @property
    def seconds(self) -> float:
        return self.ms / 1000

    @property
    def low_seconds(self) -> float:
        return self.low_ms / 1000

    @property
    def high_seconds(self) -> float:
        return self.high_ms / 1000


def bucket_range(index: int, bounds: Sequence[int]) -> tuple[float, float | None]:
    """The (lower, upper] bounds of bucket `index`; upper is None for the open last one.

    Bucket i holds durations d with bounds[i-1] < d <= bounds[i] (the recorder's
    `bisect_left`), bucket 0 those from 0, bucket len(bounds) those above the last bound.
    """
    if not 0 <= index <= len(bounds):
        raise ValueError(f"bucket {index} is not in 0..{len(bounds)}")
    lower = float(bounds[index - 1]) if index > 0 else 0.0
    upper = float(bounds[index]) if index < len(bounds) else None
    return lower, upper


def percentile(
    counts: Mapping[int, int],
    q: float,
    bounds: Sequence[int],
    max_ms: float | None = None,
) -> Estimate | None:
    """The q-quantile (0 < q <= 1) of a histogram {bucket index: count}; None if empty.

    `max_ms`, the largest duration seen (JobTally keeps it), closes the open last bucket
    and narrows the bucket it falls in: no estimate is above it. Without it, an estimate
    in the open bucket is that bucket's lower bound (all we know is "more than that").
    """
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], not {q}")
    total = sum(count for count in counts.values() if count > 0)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index in sorted(counts):
        count = counts[index]
        if count <= 0:
            continue
        if seen + count >= rank:
            low, high = _narrowed(index, bounds, max_ms)
            fraction = (rank - seen) / count
            return Estimate(low + fraction * (high - low), low, high)
        seen += count
    raise AssertionError("unreachable: the ranks add up to the total")  # pragma: no cover


def _narrowed(index: int, bounds: Sequence[int], max_ms: float | None) -> tuple[float, float]:
    low, high = bucket_range(index, bounds)
    if max_ms is not None and max_ms >= low and (high is None or max_ms < high):
        high = max_ms  # the slowest job sits in this bucket: nothing above it
    return low, low if high is None else high


def short_duration(ms: float) -> str:
    """A bucket bound as a person reads it: 250 ms, 2.5 s, 5 min, 1 h."""
    if ms < 1000:
        return f"{ms:g} ms"
    if ms < 60_000:
        return f"{ms / 1000:g} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:g} min"
    return f"{ms / 3_600_000:g} h"


def bucket_label(index: int, bounds: Sequence[int]) -> str:
    """ "≤ 5 ms", "5-10 ms"-style label of bucket `index` ("> 1 h" for the open one)."""
    low, high = bucket_range(index, bounds)
    if high is None:
        return f"> {short_duration(low)}"
    if low == 0:
        return f"≤ {short_duration(high)}"
    return f"{short_duration(low)}-{short_duration(high)}"
