"""From per-round figures to the printed tables and the JSON file.

Only medians over rounds are printed, and only the layer/bare ratios are meant to be
compared with other runs: the machine is shared and noisy (perf-baseline.md), so an
absolute figure says little on its own. `targets` turns the medians into the
performance issue's PASS/FAIL table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.figures import median, ratio

SIDES = ("bare", "layer", "bare-atomic", "layer-atomic")

# Issue 4's targets: (figure, how it is read, the bound).
DRAIN_TARGET = 0.85
ENQUEUE_TARGET = 0.90
LAG_P95_TARGET_MS = 1000.0
MEMORY_GROWTH_TARGET = 0.10


def medians(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per side, the median over its rounds of every numeric figure."""
    summary: dict[str, dict[str, float]] = {}
    for side in SIDES:
        rounds = [run for run in runs if run["side"] == side]
        if not rounds:
            continue
        keys = [k for k, v in rounds[0].items() if isinstance(v, int | float) and k != "round"]
        summary[side] = {key: median([run[key] for run in rounds]) for key in keys}
    return summary


def ratios(summary: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Layer over bare, from the medians: above 1 the layer is faster."""
    bare, layer = summary["bare"], summary["layer"]
    result = {
        "enqueue": ratio(layer["enqueue_per_s"], bare["enqueue_per_s"]),
        "drain": ratio(layer["drain_per_s"], bare["drain_per_s"]),
    }
    if "layer-atomic" in summary and "bare-atomic" in summary:
        # Both sides make the same view-shaped transaction (bench.producer).
        result["enqueue_in_transaction"] = ratio(
            summary["layer-atomic"]["enqueue_per_s"], summary["bare-atomic"]["enqueue_per_s"]
        )
    if "relayed_drain_per_s" in summary.get("layer-atomic", {}):
        # The jobs enqueued in transactions, published by the worker's relay while the
        # worker runs them, against the layer's drain of jobs published beforehand: what
        # the relay's publishing costs the worker's machine.
        result["relayed_drain"] = ratio(
            summary["layer-atomic"]["relayed_drain_per_s"], layer["drain_per_s"]
        )
    return result


def targets(
    databases: Mapping[str, Mapping[str, Any]], memory: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Each target of the performance issue with the measured figure and PASS/FAIL."""
    verdicts: list[dict[str, Any]] = []

    def add(name: str, value: float, bound: str, passed: bool, unit: str = "") -> None:
        verdicts.append(
            {"figure": name, "value": value, "unit": unit, "target": bound, "pass": passed}
        )

    for label, entry in databases.items():
        r = entry["ratios_layer_over_bare"]
        medians_ = entry["medians"]
        add(f"drain ratio, {label}", r["drain"], f">= {DRAIN_TARGET}", r["drain"] >= DRAIN_TARGET)
        add(
            f"enqueue ratio, {label}",
            r["enqueue"],
            f">= {ENQUEUE_TARGET}",
            r["enqueue"] >= ENQUEUE_TARGET,
        )
        if "enqueue_in_transaction" in r:
            value = r["enqueue_in_transaction"]
            add(
                f"enqueue ratio in a transaction, {label}",
                value,
                f">= {ENQUEUE_TARGET}",
                value >= ENQUEUE_TARGET,
            )
        if "relayed_drain" in r:
            add(
                f"drain of jobs enqueued in a transaction, relay included / layer drain, {label}",
                r["relayed_drain"],
                "reported",
                True,
            )
        lag = medians_["layer"]["lag_p95_ms"]
        add(
            f"visibility lag p95, {label}",
            lag,
            f"< {LAG_P95_TARGET_MS:.0f}",
            lag < LAG_P95_TARGET_MS,
            "ms",
        )
        for side, baseline in (("layer", "bare"), ("layer-atomic", "bare-atomic")):
            if side in medians_ and baseline in medians_:
                add(
                    f"publish p99 ({side}), {label}",
                    medians_[side]["publish_p99_us"],
                    f"reported ({baseline} {medians_[baseline]['publish_p99_us']:.0f})",
                    True,
                    "µs",
                )
    if memory is not None:
        growth = memory["growth"]
        add(
            f"worker RSS growth, {memory['jobs_early']} -> {memory['jobs_late']} jobs",
            growth * 100,
            f"<= {MEMORY_GROWTH_TARGET * 100:.0f}",
            growth <= MEMORY_GROWTH_TARGET,
            "%",
        )
    return verdicts


def format_targets(verdicts: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            v["figure"],
            f"{v['value']:.2f}{(' ' + v['unit']) if v['unit'] else ''}",
            v["target"],
            "PASS" if v["pass"] else "FAIL",
        ]
        for v in verdicts
    ]
    return "\n".join(
        ["Targets (performance issue):", "", *_table(["figure", "measured", "target", ""], rows)]
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, so the output pastes into docs/benchmarks.md as it is."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if i else "-" * (w + 2) for i, w in enumerate(widths)
    )
    return [line(header), rule + "|", *(line(row) for row in rows)]


def format_report(meta: Mapping[str, Any], summary: Mapping[str, Mapping[str, float]]) -> str:
    bare, layer = summary["bare"], summary["layer"]
    r = ratios(summary)
    lines = [
        f"make bench: N={meta['n']} noop tasks, {meta['rounds']} interleaved round(s) "
        f"(bare, layer, ...), medians over rounds",
        f"layer database: {meta['database']}",
        f"broker: private redis-server {meta['machine']['redis_server']} at {meta['broker']}",
        "",
        *_table(
            ["", "enqueue/s", "publish p50 µs", "publish p99 µs", "drain/s"],
            [
                [
                    side,
                    f"{fig['enqueue_per_s']:.0f}",
                    f"{fig['publish_p50_us']:.0f}",
                    f"{fig['publish_p99_us']:.0f}",
                    f"{fig['drain_per_s']:.0f}",
                ]
                for side, fig in (("bare", bare), ("layer", layer))
            ]
            + [
                [
                    label,
                    f"{summary[side]['enqueue_per_s']:.0f}",
                    f"{summary[side]['publish_p50_us']:.0f}",
                    f"{summary[side]['publish_p99_us']:.0f}",
                    (
                        f"{summary[side]['relayed_drain_per_s']:.0f} (relayed)"
                        if "relayed_drain_per_s" in summary[side]
                        else ""
                    ),
                ]
                for side, label in (
                    ("bare-atomic", "bare, in a view's transaction"),
                    ("layer-atomic", "layer, in a view's transaction"),
                )
                if side in summary
            ]
            + [["layer/bare", f"{r['enqueue']:.2f}", "", "", f"{r['drain']:.2f}"]]
            + (
                [
                    [
                        "in a transaction: layer/bare (drain: relayed/layer)",
                        f"{r['enqueue_in_transaction']:.2f}",
                        "",
                        "",
                        f"{r['relayed_drain']:.2f}" if "relayed_drain" in r else "",
                    ]
                ]
                if "enqueue_in_transaction" in r
                else []
            ),
        ),
        "",
        "Where the time goes (medians; cores = CPU seconds / drain seconds, start-up included;",
        "machine = every process on the machine, the database server too):",
        "",
        *_table(
            [
                "",
                "producer CPU µs/publish",
                "drain s",
                "worker main cores",
                "pool children cores",
                "redis cores",
                "machine cores",
            ],
            [
                [
                    side,
                    f"{fig['producer_cpu_us_per_publish']:.0f}",
                    f"{fig['drain_s']:.2f}",
                    f"{fig['worker_main_cores']:.2f}",
                    f"{fig['worker_children_cores']:.2f}",
                    f"{fig['redis_cores']:.2f}",
                    f"{fig['machine_cores']:.2f}",
                ]
                for side, fig in (("bare", bare), ("layer", layer))
            ],
        ),
    ]
    return "\n".join(lines)


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
