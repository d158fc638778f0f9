"""bench.figures.combine: one side's enqueue figures from the halves of an A B B A pair.

The rate must be every measured call over the time those calls took (not the mean of
the halves' rates, which weighs a short slow half like a long fast one), and the
percentiles must come from every call of every half.
"""

from __future__ import annotations

import math

import pytest

from bench.figures import combine


def part(latencies_us: list[float], measured_wall_s: float, cpu_s: float = 1.0) -> dict:
    return {
        "n": len(latencies_us) + 20,
        "measured_calls": len(latencies_us),
        "measured_wall_s": measured_wall_s,
        "latencies_us": latencies_us,
        "warmup_total_us": 100.0,
        "wall_s": measured_wall_s + 0.1,
        "cpu_s": cpu_s,
    }


def test_the_rate_is_all_calls_over_all_their_time() -> None:
    fast = part([100.0] * 900, measured_wall_s=1.0)  # 900/s
    slow = part([1000.0] * 100, measured_wall_s=1.0)  # 100/s
    combined = combine([fast, slow])
    assert combined["enqueue_per_s"] == pytest.approx(1000 / 2.0)
    assert combined["measured_calls"] == 1000
    assert combined["n"] == 1040
    assert combined["parts"] == 2
    assert combined["cpu_s"] == pytest.approx(2.0)


def test_percentiles_are_over_every_call_of_every_part() -> None:
    first = part([float(v) for v in range(1, 51)], measured_wall_s=1.0)
    second = part([float(v) for v in range(51, 101)], measured_wall_s=1.0)
    combined = combine([first, second])
    assert combined["publish_p50_us"] == 50.0
    assert combined["publish_p99_us"] == 99.0
    assert combined["publish_mean_us"] == pytest.approx(50.5)


def test_no_parts_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="no producer parts"):
        combine([])


def test_a_part_that_took_no_time_gives_nan_not_a_crash() -> None:
    combined = combine([part([1.0], measured_wall_s=0.0)])
    assert math.isnan(combined["enqueue_per_s"])
