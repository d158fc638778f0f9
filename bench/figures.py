"""Summary statistics for the bench: pure functions, no I/O, stdlib only.

The producer subprocesses import this too, so it must not pull in Django or Celery.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


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
