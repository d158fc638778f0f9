"""The targets table: each verdict with the spread of its rounds, and the 10M-row part's.

Pure: per-round figures in, verdict lines out (bench.report, bench.scale_report).
"""

from __future__ import annotations

from typing import Any

import pytest

from bench import report, scale_report


def loaded_entry(
    queries: list[dict[str, Any]], enqueue: dict[str, list[float]] | None = None
) -> dict[str, Any]:
    """Paired rounds of both layers; `enqueue` gives each table's layer enqueue/s by round."""
    enqueue = enqueue or {"empty": [100.0], "loaded": [100.0]}
    runs = [
        {
            "round": number,
            "side": side,
            "table": table,
            "enqueue_per_s": enqueue[table][number - 1],
            "drain_per_s": 50.0,
            "lag_p95_ms": 100.0,
        }
        for number in range(1, len(enqueue["empty"]) + 1)
        for side in ("layer", "layer-atomic")
        for table in scale_report.TABLES
    ]
    return scale_report.summarize({"rows": 1000, "runs": runs, "queries": queries})


def test_a_question_over_150_ms_at_p95_fails_and_one_under_passes() -> None:
    queries = [
        {"question": "admin job list, first page", "p50_ms": 40.0, "p95_ms": 149.9},
        {"question": "admin search by task id", "p50_ms": 90.0, "p95_ms": 150.0},
    ]
    lines = {line["figure"]: line for line in scale_report.verdicts(loaded_entry(queries))}
    assert lines["admin job list, first page, p95, 1,000 rows"]["pass"] is True
    assert lines["admin search by task id, p95, 1,000 rows"]["pass"] is False
    assert lines["admin search by task id, p95, 1,000 rows"]["value"] == 150.0


def test_loaded_over_empty_is_the_median_of_the_paired_rounds() -> None:
    # Round 2 is slow on both tables: paired it is 1.0, and the median is 0.94.
    entry = loaded_entry([], {"empty": [100.0, 50.0, 100.0], "loaded": [92.0, 50.0, 94.0]})
    lines = {line["figure"]: line for line in scale_report.verdicts(entry)}
    line = lines["layer enqueue, PostgreSQL, 1,000 rows / empty"]
    assert line["value"] == pytest.approx(0.94)
    assert line["per_round"] == pytest.approx([0.92, 1.0, 0.94])
    assert line["pass"] is False
    assert scale_report.undecided(entry["runs"]) == ["enqueue", "enqueue_in_transaction"]


def test_rounds_that_agree_leave_nothing_undecided() -> None:
    entry = loaded_entry([], {"empty": [100.0, 50.0, 100.0], "loaded": [99.0, 49.0, 101.0]})
    assert scale_report.undecided(entry["runs"]) == []


def test_each_verdict_line_shows_the_median_its_spread_and_rounds() -> None:
    entry = loaded_entry([], {"empty": [100.0] * 5, "loaded": [97.0, 101.0, 104.0, 99.0, 102.0]})
    table = report.format_targets(scale_report.verdicts(entry))
    row = next(line for line in table.splitlines() if "layer enqueue, PostgreSQL" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == [
        "layer enqueue, PostgreSQL, 1,000 rows / empty",
        "1.01 (0.97-1.04, 5 rounds)",
        ">= 0.95",
        "PASS",
    ]


def bench_runs(layer: list[float], bare: list[float]) -> list[dict[str, Any]]:
    """bench.run's per-round figures: enqueue and drain both at the given rates."""
    runs = []
    for number, (mine, theirs) in enumerate(zip(layer, bare, strict=True), start=1):
        for side, rate in (("bare", theirs), ("layer", mine)):
            runs.append(
                {
                    "round": number,
                    "side": side,
                    "enqueue_per_s": rate,
                    "drain_per_s": rate,
                    "publish_p99_us": 900.0,
                    **({"lag_p95_ms": 150.0 + number} if side == "layer" else {}),
                }
            )
    return runs


def test_layer_over_bare_pairs_the_sides_of_each_round() -> None:
    runs = bench_runs(layer=[90.0, 45.0, 95.0], bare=[100.0, 40.0, 100.0])
    ratios = report.ratios(runs)
    assert ratios["drain"]["per_round"] == pytest.approx([0.9, 1.125, 0.95])
    assert ratios["drain"]["value"] == pytest.approx(0.95)
    entry = {"runs": runs, "ratios_layer_over_bare": ratios}
    rows = report.format_targets(report.targets({"SQLite": entry}, None)).splitlines()
    drain = next(row for row in rows if "drain ratio, SQLite" in row)
    assert [cell.strip() for cell in drain.strip("|").split("|")] == [
        "drain ratio, SQLite",
        "0.95 (0.90-1.12, 3 rounds)",
        ">= 0.85",
        "PASS",
    ]
    lag = next(row for row in rows if "visibility lag p95, SQLite" in row)
    assert "152 ms (151-153, 3 rounds)" in lag


def test_the_memory_check_is_one_measurement_not_rounds() -> None:
    memory = {"growth": 0.0033, "jobs_early": 5000, "jobs_late": 100000}
    rows = report.format_targets(report.targets({}, memory)).splitlines()
    assert [cell.strip() for cell in rows[-1].strip("|").split("|")] == [
        "worker RSS growth, 5000 -> 100000 jobs",
        "0.33 %",
        "<= 10",
        "PASS",
    ]
