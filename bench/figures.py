"""Summary statistics for the bench: pure functions, no I/O, stdlib only.

The producer subprocesses import this too, so it must not pull in Django or Celery.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in (0, 100].

    Nearest rank (a value that was actually measured, no interpolation) is what the
    baseline figures use, and with thousands of samples the choice hardly matters.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median of a side's figure over rounds (the absolute tables, never a verdict)."""
    return statistics.median(values)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is 0 (a run that measured nothing)."""
    return numerator / denominator if denominator else math.nan


def combine(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One side's producer figures from its parts of an interleaved sequence (A B B A).

    A side's N publishes are made in two halves around the other side's, so a slow
    spell of the shared machine lands on both sides instead of on whichever side
    happened to be publishing then. The rate is the calls over the time they took,
    summed over the parts; the percentiles are over every call of every part.
    """
    if not parts:
        raise ValueError("no producer parts to combine")
    latencies = [value for part in parts for value in part["latencies_us"]]
    measured = sum(part["measured_calls"] for part in parts)
    return {
        "n": sum(part["n"] for part in parts),
        "parts": len(parts),
        "measured_calls": measured,
        "enqueue_per_s": ratio(measured, sum(part["measured_wall_s"] for part in parts)),
        "publish_p50_us": percentile(latencies, 50),
        "publish_p99_us": percentile(latencies, 99),
        "publish_mean_us": sum(latencies) / len(latencies),
        "warmup_total_us": sum(part["warmup_total_us"] for part in parts),
        "wall_s": sum(part["wall_s"] for part in parts),
        "cpu_s": sum(part["cpu_s"] for part in parts),
    }


def over_rounds(values: Sequence[float]) -> dict[str, Any]:
    """A figure over the rounds, the one way the bench combines rounds: the median of the
    per-round values, with their spread (lowest, highest) and their number.

    For a ratio the values are per-round ratios (`paired`): each round's two sides were
    measured in the same minutes of the host, so a slow spell lands in both and mostly
    cancels; a ratio of two medians would pair one round's numerator with another's
    denominator.
    """
    if not values:
        raise ValueError("no rounds to combine")
    return {
        "value": statistics.median(values),
        "low": min(values),
        "high": max(values),
        "rounds": len(values),
        "per_round": list(values),
    }


def single(value: float) -> dict[str, Any]:
    """A figure measured once, not over rounds (the memory check), shaped as `over_rounds`."""
    return {"value": value, "low": value, "high": value, "rounds": 0, "per_round": []}


def paired(numerators: Mapping[int, float], denominators: Mapping[int, float]) -> dict[str, Any]:
    """numerator / denominator per round (the rounds that have both, in order), combined
    by `over_rounds`: the median of per-round ratios."""
    common = sorted(set(numerators) & set(denominators))
    return over_rounds([ratio(numerators[n], denominators[n]) for n in common])


def straddles(combined: Mapping[str, Any], bound: float) -> bool:
    """Whether the rounds disagree on `value >= bound`: some below it, some at or above.

    Then one noisy round more or less could flip the verdict, and the 10M-row part runs
    more paired rounds (bench.scale_ratios)."""
    return bool(combined["low"] < bound <= combined["high"])


def with_spread(combined: Mapping[str, Any], digits: int = 2, unit: str = "") -> str:
    """`1.01 (0.97-1.04, 5 rounds)`: the median, the spread of the rounds, their number."""
    if math.isnan(combined["value"]):
        return "none"  # nothing measured (a page not built yet, a run that did nothing)
    unit = f" {unit}" if unit else ""
    value = f"{combined['value']:.{digits}f}{unit}"
    if not combined["rounds"]:
        return value
    if combined["rounds"] == 1:
        return f"{value} (1 round)"
    return (
        f"{value} ({combined['low']:.{digits}f}-{combined['high']:.{digits}f}, "
        f"{combined['rounds']} rounds)"
    )
