"""The 10M-row part's figures (bench.scale_ratios): loaded / empty per round, verdicts.

Bare Celery never touches the job table, so (layer on the loaded table / bare) / (layer
on an empty table / bare) is the layer's own loaded / empty. Both layers run in the same
rounds, so each round's loaded / empty pairs two figures of the same minutes of the host;
the verdict is the median of those per-round ratios (`bench.figures.paired`), PASS at
0.95 or more, printed with the spread of its rounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bench import scale
from bench.figures import over_rounds, paired, single, straddles, with_spread
from bench.report import at_least, table, verdict

# Issue 4: "the enqueue/drain ratios fall by no more than 5% from the empty-table figures".
RATIO_KEPT_TARGET = 0.95

TABLES = ("empty", "loaded")
# The figures compared, as (side, per-round figure, key, label).
FIGURES = (
    ("layer", "enqueue_per_s", "enqueue", "enqueue"),
    ("layer", "drain_per_s", "drain", "drain"),
    ("layer-atomic", "enqueue_per_s", "enqueue_in_transaction", "enqueue in a transaction"),
)


def per_round(runs: Sequence[Mapping[str, Any]], side: str, figure: str, table_: str) -> dict:
    """One layer's figure on one table, round by round."""
    return {
        run["round"]: run[figure] for run in runs if run["side"] == side and run["table"] == table_
    }


def loaded_over_empty(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per figure: loaded / empty, the median of per-round ratios with its spread."""
    return {
        key: paired(per_round(runs, side, figure, "loaded"), per_round(runs, side, figure, "empty"))
        for side, figure, key, _label in FIGURES
    }


def undecided(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The figures whose rounds straddle the bound: one round more or less could flip
    their verdict, so bench.scale_ratios runs another paired round (up to --max-rounds)."""
    return [
        key
        for key, combined in loaded_over_empty(runs).items()
        if straddles(combined, RATIO_KEPT_TARGET)
    ]


def summarize(entry: dict[str, Any]) -> dict[str, Any]:
    """Per figure: each table's median, and loaded / empty over the rounds."""
    runs = entry["runs"]
    ratios = loaded_over_empty(runs)
    comparison: dict[str, dict[str, Any]] = {}
    for side, figure, key, _label in FIGURES:
        comparison[key] = {
            "empty": over_rounds(list(per_round(runs, side, figure, "empty").values()))["value"],
            "loaded": over_rounds(list(per_round(runs, side, figure, "loaded").values()))["value"],
            "loaded_over_empty": ratios[key],
        }
    for table_ in TABLES:
        lags = [run["lag_p95_ms"] for run in runs if run["table"] == table_ and "lag_p95_ms" in run]
        comparison[f"lag_p95_ms_{table_}"] = over_rounds(lags)
    entry["comparison"] = comparison
    return entry


def verdicts(loaded: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One line per figure for the targets table: loaded / empty >= 0.95."""
    comparison = loaded["comparison"]
    where = f"PostgreSQL, {loaded['rows']:,} rows / empty"
    lines = [
        at_least(f"layer {label}, {where}", comparison[key]["loaded_over_empty"], RATIO_KEPT_TARGET)
        for _side, _figure, key, label in FIGURES
    ]
    for query in loaded.get("queries", ()):
        figure = f"{query['question']}, p95, {loaded['rows']:,} rows"
        # The /metrics scrape has a target of its own (bench.scale.SCRAPE_P95_TARGET_MS).
        target = query.get("target_ms", scale.P95_TARGET_MS)
        if "failed" in query:
            # A page not built yet (501) or one that failed: no time, and no PASS.
            lines.append(
                verdict(
                    figure,
                    single(math.nan),
                    f"< {target:.0f} ({query['failed']})",
                    False,
                    "ms",
                )
            )
            continue
        # 100 samples after a warm-up, not rounds: the p95 is the 95th value.
        lines.append(
            verdict(
                figure,
                single(query["p95_ms"]),
                f"< {target:.0f} (p50 {query['p50_ms']:.1f})",
                query["p95_ms"] < target,
                "ms",
            )
        )
    lines.append(
        verdict(
            f"visibility lag p95, PostgreSQL, {loaded['rows']:,} rows",
            comparison["lag_p95_ms_loaded"],
            f"reported (empty {comparison['lag_p95_ms_empty']['value']:.0f})",
            True,
            "ms",
        )
    )
    return lines


def load_steps(load: Mapping[str, float]) -> str:
    """`copy 12 s, insert 40 s, ...`: the load's steps (bench.scale.load) in order."""
    return ", ".join(
        f"{key.removesuffix('_s').replace('_', ' ')} {seconds:.0f} s"
        for key, seconds in load.items()
        if key != "total_s"
    )


def format_report(loaded: Mapping[str, Any]) -> str:
    """The paired rounds, figure by figure, with the load's timings."""
    load = loaded["load"]
    rows = []
    for _side, _figure, key, label in FIGURES:
        figures = loaded["comparison"][key]
        ratio = figures["loaded_over_empty"]
        rows.append(
            [
                f"layer {label} /s",
                f"{figures['empty']:.0f}",
                f"{figures['loaded']:.0f}",
                ", ".join(f"{value:.3f}" for value in ratio["per_round"]),
                with_spread(ratio, digits=3),
            ]
        )
    header = ["figure", "empty", "loaded", "loaded/empty by round", "median"]
    return "\n".join(
        [
            f"The layer on an empty table and on {loaded['rows']:,} finished jobs, paired "
            f"in each round (loaded in {load['total_s']:.0f} s: {load_steps(load)}):",
            "",
            *table(header, rows),
        ]
    )
