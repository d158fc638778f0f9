"""The 10M-row part's targets table: each admin or dashboard question judged by its p95."""

from __future__ import annotations

from typing import Any

from bench import scale_ratios


def loaded_entry(queries: list[dict[str, Any]]) -> dict[str, Any]:
    runs = [
        {"round": 1, "side": side, "table": table, "enqueue_per_s": 100.0, "drain_per_s": 50.0}
        for side in ("layer", "layer-atomic")
        for table in scale_ratios.TABLES
    ]
    for run in runs:
        run["lag_p95_ms"] = 100.0
    return scale_ratios.summarize({"rows": 1000, "runs": runs, "queries": queries})


def test_a_question_over_150_ms_at_p95_fails_and_one_under_passes() -> None:
    queries = [
        {"question": "admin job list, first page", "p50_ms": 40.0, "p95_ms": 149.9},
        {"question": "admin search by task id", "p50_ms": 90.0, "p95_ms": 150.0},
    ]
    lines = {line["figure"]: line for line in scale_ratios.verdicts(loaded_entry(queries))}
    assert lines["admin job list, first page, p95, 1,000 rows"]["pass"] is True
    assert lines["admin search by task id, p95, 1,000 rows"]["pass"] is False
    assert lines["admin search by task id, p95, 1,000 rows"]["value"] == 150.0
