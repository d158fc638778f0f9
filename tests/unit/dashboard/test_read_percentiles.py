"""Percentiles from a duration histogram: found in the right bucket, interpolated inside
it, never above the largest duration seen, and always within the bucket's bounds."""

from __future__ import annotations

import random

import pytest

from dashboard.read.percentiles import bucket_label, bucket_range, percentile, short_duration

BOUNDS = (5, 10, 25, 50, 100, 250, 500, 1_000)


def histogram(durations: list[float]) -> dict[int, int]:
    """What the recorder would tally: the first bound a duration does not exceed."""
    counts: dict[int, int] = {}
    for ms in durations:
        index = next((i for i, bound in enumerate(BOUNDS) if ms <= bound), len(BOUNDS))
        counts[index] = counts.get(index, 0) + 1
    return counts


def test_an_empty_histogram_has_no_percentile() -> None:
    assert percentile({}, 0.5, BOUNDS) is None
    assert percentile({3: 0}, 0.95, BOUNDS) is None


def test_interpolates_inside_the_bucket_holding_the_rank() -> None:
    # 10 jobs in (100, 250]: the median is half-way through it, p95 near its top.
    estimate = percentile({5: 10}, 0.5, BOUNDS)
    assert estimate is not None
    assert (estimate.ms, estimate.low_ms, estimate.high_ms) == (175, 100, 250)
    p95 = percentile({5: 10}, 0.95, BOUNDS)
    assert p95 is not None
    assert p95.ms == pytest.approx(242.5)


def test_the_rank_walks_across_buckets() -> None:
    # 2 in (0, 5], 6 in (25, 50], 2 in (500, 1000]: rank 5 of 10 is the 3rd of 6.
    counts = {0: 2, 3: 6, 7: 2}
    p50 = percentile(counts, 0.5, BOUNDS)
    assert p50 is not None
    assert p50.ms == pytest.approx(25 + 3 / 6 * 25)
    p95 = percentile(counts, 0.95, BOUNDS)
    assert p95 is not None
    assert (p95.low_ms, p95.high_ms) == (500, 1000)
    assert p95.ms == pytest.approx(500 + 1.5 / 2 * 500)
    p10 = percentile(counts, 0.1, BOUNDS)
    assert p10 is not None
    assert p10.ms == pytest.approx(2.5)


def test_the_largest_duration_closes_the_bucket_it_is_in() -> None:
    p50 = percentile({5: 4}, 0.5, BOUNDS, max_ms=200)
    assert p50 is not None
    assert (p50.ms, p50.high_ms) == (150, 200)
    p100 = percentile({5: 4}, 1.0, BOUNDS, max_ms=200)
    assert p100 is not None
    assert p100.ms == 200
    # A max in a later bucket leaves an earlier bucket's bounds alone.
    lower = percentile({2: 4, 6: 1}, 0.5, BOUNDS, max_ms=400)
    assert lower is not None
    assert lower.high_ms == 25


def test_the_open_last_bucket() -> None:
    over = len(BOUNDS)
    without_max = percentile({over: 3}, 0.5, BOUNDS)
    assert without_max is not None
    assert (without_max.ms, without_max.low_ms, without_max.high_ms) == (1000, 1000, 1000)
    with_max = percentile({over: 2}, 0.5, BOUNDS, max_ms=5000)
    assert with_max is not None
    assert (with_max.ms, with_max.high_ms) == (3000, 5000)


def test_estimates_bracket_the_true_percentile_and_rise_with_q() -> None:
    rng = random.Random(21)
    durations = [rng.lognormvariate(4, 1.2) for _ in range(2000)]
    counts = histogram(durations)
    top = max(durations)
    ordered = sorted(durations)
    previous = 0.0
    for q in (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0):
        estimate = percentile(counts, q, BOUNDS, max_ms=top)
        assert estimate is not None
        true = ordered[max(0, int(q * len(ordered)) - 1)]
        assert estimate.low_ms <= true <= estimate.high_ms, q
        assert estimate.low_ms <= estimate.ms <= estimate.high_ms <= top
        assert estimate.ms >= previous
        previous = estimate.ms


def test_q_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="q must be"):
        percentile({1: 1}, 0, BOUNDS)
    with pytest.raises(ValueError, match="q must be"):
        percentile({1: 1}, 1.5, BOUNDS)


def test_bucket_ranges_and_labels() -> None:
    assert bucket_range(0, BOUNDS) == (0, 5)
    assert bucket_range(3, BOUNDS) == (25, 50)
    assert bucket_range(len(BOUNDS), BOUNDS) == (1000, None)
    with pytest.raises(ValueError, match="not in"):
        bucket_range(len(BOUNDS) + 1, BOUNDS)
    assert bucket_label(0, BOUNDS) == "≤ 5 ms"
    assert bucket_label(6, BOUNDS) == "250 ms-500 ms"
    assert bucket_label(len(BOUNDS), BOUNDS) == "> 1 s"
    assert [short_duration(ms) for ms in (250, 2_500, 60_000, 90_000, 3_600_000)] == [
        "250 ms",
        "2.5 s",
        "1 min",
        "1.5 min",
        "1 h",
    ]


def test_the_layer_bounds_are_what_the_recorder_buckets_by() -> None:
    from tasks.observations import BUCKET_BOUNDS_MS
    from tasks.record.tallies import bucket_of

    for ms in (0, 5, 6, 999, 1000, 1001, 3_600_000, 3_600_001):
        low, high = bucket_range(bucket_of(ms), BUCKET_BOUNDS_MS)
        assert low < ms or low == 0, ms
        assert high is None or ms <= high, ms
