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
    """The median over rounds: one noisy round on a shared machine cannot move it."""
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
