"""bench.figures: one side's enqueue figures from its interleaved parts, and rounds.

The rate must be every measured call over the time those calls took (not the mean of
the parts' rates, which weighs a short slow part like a long fast one), and the
percentiles must come from every call of every part. Over rounds a ratio is the median
of per-round ratios, printed with the spread of the rounds.
"""

from __future__ import annotations

import math

import pytest

from bench.figures import combine, median, over_rounds, paired, single, straddles, with_spread


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


# --- rounds: the median of per-round ratios, the one combining rule -------------------


def test_a_ratio_over_rounds_is_the_median_of_per_round_ratios() -> None:
    # Round 2 was a slow spell for both sides: paired, it still says 1.25.
    layer = {1: 90.0, 2: 50.0, 3: 110.0}
    bare = {1: 100.0, 2: 40.0, 3: 100.0}
    combined = paired(layer, bare)
    assert combined["per_round"] == pytest.approx([0.9, 1.25, 1.1])
    assert combined["value"] == pytest.approx(1.1)
    assert (combined["low"], combined["high"], combined["rounds"]) == pytest.approx((0.9, 1.25, 3))
    # Not layer median / bare median (90 / 100 = 0.9).
    assert combined["value"] != pytest.approx(median(list(layer.values())) / 100.0)


def test_only_rounds_with_both_sides_are_paired_in_round_order() -> None:
    combined = paired({3: 3.0, 1: 1.0, 2: 2.0}, {1: 1.0, 3: 1.0})
    assert combined["per_round"] == [1.0, 3.0]
    assert combined["rounds"] == 2


def test_no_rounds_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rounds"):
        over_rounds([])


def test_rounds_straddle_a_bound_when_some_fall_below_and_some_not() -> None:
    assert straddles(over_rounds([0.92, 1.06, 0.94]), 0.95)
    assert not straddles(over_rounds([0.96, 1.06, 0.95]), 0.95)
    assert not straddles(over_rounds([0.90, 0.91, 0.94]), 0.95)


def test_the_spread_is_printed_beside_the_median() -> None:
    assert with_spread(over_rounds([0.97, 1.01, 1.04, 0.99, 1.02])) == "1.01 (0.97-1.04, 5 rounds)"
    assert with_spread(over_rounds([152.4, 149.0, 160.2]), 0, "ms") == "152 ms (149-160, 3 rounds)"
    assert with_spread(over_rounds([1.5])) == "1.50 (1 round)"
    assert with_spread(single(0.33), unit="%") == "0.33 %"
