"""From per-round figures to the printed tables and the JSON file.

Only the layer/bare ratios are meant to be compared with other runs: the machine is
shared and noisy (perf-baseline.md), so an absolute figure says little on its own.
Every ratio is the median of per-round ratios (`bench.figures.paired`), printed with
the spread of its rounds; `targets` turns them into the performance issue's PASS/FAIL
table. The absolute tables show each side's medians.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import dashboards
from bench.figures import median, over_rounds, paired, single, with_spread

SIDES = ("bare", "layer", "layer-dashboards", "bare-atomic", "layer-atomic")

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


def by_round(runs: Sequence[Mapping[str, Any]], side: str, key: str) -> dict[int, float]:
    """One side's figure `key`, round by round."""
    return {run["round"]: run[key] for run in runs if run["side"] == side and key in run}


def ratios(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Layer over bare, the median of per-round ratios with its spread: above 1 the layer
    is faster."""
    result = {
        "enqueue": paired(
            by_round(runs, "layer", "enqueue_per_s"), by_round(runs, "bare", "enqueue_per_s")
        ),
        "drain": paired(
            by_round(runs, "layer", "drain_per_s"), by_round(runs, "bare", "drain_per_s")
        ),
    }
    with_dashboards = by_round(runs, "layer-dashboards", "drain_per_s")
    if with_dashboards:
        # The layer's drain with dashboards polling against the same round's bare drain.
        result["drain_with_dashboards"] = paired(
            with_dashboards, by_round(runs, "bare", "drain_per_s")
        )
        # And against the layer's own drain of the round: what the dashboards cost it,
        # without bare's share of the host's noise.
        result["dashboards_on_over_off"] = paired(
            with_dashboards, by_round(runs, "layer", "drain_per_s")
        )
    atomic = by_round(runs, "layer-atomic", "enqueue_per_s")
    if atomic:
        # Both sides make the same view-shaped transaction (bench.producer).
        result["enqueue_in_transaction"] = paired(
            atomic, by_round(runs, "bare-atomic", "enqueue_per_s")
        )
    relayed = by_round(runs, "layer-atomic", "relayed_drain_per_s")
    if relayed:
        # The jobs enqueued in transactions, published by the worker's relay while the
        # worker runs them, against the layer's drain of jobs published beforehand: what
        # the relay's publishing costs the worker's machine.
        result["relayed_drain"] = paired(relayed, by_round(runs, "layer", "drain_per_s"))
    return result


def verdict(
    figure: str, combined: Mapping[str, Any], target: str, passed: bool, unit: str = ""
) -> dict[str, Any]:
    """One line of the targets table: a figure over its rounds (`over_rounds`)."""
    return {
        "figure": figure,
        "value": combined["value"],
        "low": combined["low"],
        "high": combined["high"],
        "rounds": combined["rounds"],
        "per_round": combined["per_round"],
        "unit": unit,
        "target": target,
        "pass": passed,
    }


def at_least(figure: str, combined: Mapping[str, Any], bound: float) -> dict[str, Any]:
    """PASS when the median of the rounds is at least `bound`."""
    return verdict(figure, combined, f">= {bound}", combined["value"] >= bound)


def targets(
    databases: Mapping[str, Mapping[str, Any]], memory: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Each target of the performance issue with the measured figure and PASS/FAIL."""
    verdicts: list[dict[str, Any]] = []
    for label, entry in databases.items():
        r = entry["ratios_layer_over_bare"]
        runs = entry["runs"]
        verdicts.append(at_least(f"drain ratio, {label}", r["drain"], DRAIN_TARGET))
        if "drain_with_dashboards" in r:
            verdicts.append(dashboards_verdict(label, r["drain_with_dashboards"], runs))
            verdicts.append(
                verdict(
                    f"layer drain with the dashboards / without, {label}",
                    r["dashboards_on_over_off"],
                    "reported",
                    True,
                )
            )
        verdicts.append(at_least(f"enqueue ratio, {label}", r["enqueue"], ENQUEUE_TARGET))
        if "enqueue_in_transaction" in r:
            verdicts.append(
                at_least(
                    f"enqueue ratio in a transaction, {label}",
                    r["enqueue_in_transaction"],
                    ENQUEUE_TARGET,
                )
            )
        if "relayed_drain" in r:
            verdicts.append(
                verdict(
                    f"drain of jobs enqueued in a transaction, relay included / layer drain, "
                    f"{label}",
                    r["relayed_drain"],
                    "reported",
                    True,
                )
            )
        lag = over_rounds(list(by_round(runs, "layer", "lag_p95_ms").values()))
        verdicts.append(
            verdict(
                f"visibility lag p95, {label}",
                lag,
                f"< {LAG_P95_TARGET_MS:.0f}",
                lag["value"] < LAG_P95_TARGET_MS,
                "ms",
            )
        )
        for side, baseline in (("layer", "bare"), ("layer-atomic", "bare-atomic")):
            p99 = by_round(runs, side, "publish_p99_us")
            base = by_round(runs, baseline, "publish_p99_us")
            if p99 and base:
                verdicts.append(
                    verdict(
                        f"publish p99 ({side}), {label}",
                        over_rounds(list(p99.values())),
                        f"reported ({baseline} {median(list(base.values())):.0f})",
                        True,
                        "µs",
                    )
                )
    if memory is not None:
        growth = memory["growth"] * 100
        verdicts.append(
            verdict(
                f"worker RSS growth, {memory['jobs_early']} -> {memory['jobs_late']} jobs",
                single(growth),
                f"<= {MEMORY_GROWTH_TARGET * 100:.0f}",
                memory["growth"] <= MEMORY_GROWTH_TARGET,
                "%",
            )
        )
    return verdicts


def dashboards_verdict(
    label: str, combined: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The drain ratio with the dashboards polling, at the plain drain's bound, with what
    the dashboards did during the drains: a poll that failed (or none at all) means the
    load was not what the line says, so it FAILs whatever the ratio."""
    requests = sum(by_round(runs, "layer-dashboards", "dashboard_requests").values())
    errors = sum(by_round(runs, "layer-dashboards", "dashboard_errors").values())
    p95 = by_round(runs, "layer-dashboards", "dashboard_p95_ms")
    cores = by_round(runs, "layer-dashboards", "dashboard_server_cores")
    line = at_least(
        f"drain ratio, {dashboards.CLIENTS} dashboards polling every "
        f"{dashboards.INTERVAL_S:.0f} s ({requests:,} requests, {errors:,} errors; "
        f"p95 {median(list(p95.values())) if p95 else 0:.0f} ms, server "
        f"{median(list(cores.values())) if cores else 0:.2f} cores), {label}",
        combined,
        DRAIN_TARGET,
    )
    line["pass"] = bool(line["pass"] and requests and not errors)
    return line


def format_targets(verdicts: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            v["figure"],
            with_spread(v, 0 if v["unit"] in ("ms", "µs") else 2, v["unit"]),
            v["target"],
            "PASS" if v["pass"] else "FAIL",
        ]
        for v in verdicts
    ]
    return "\n".join(
        [
            "Targets (performance issue): the median of the rounds, (lowest-highest round, rounds)",
            "",
            *table(["figure", "measured", "target", ""], rows),
        ]
    )


def round_line(prefix: str, figures: Mapping[str, Any]) -> str:
    """One side's round as the bench prints it while it runs: what it measured."""
    return (
        f"{prefix}enqueue {figures['enqueue_per_s']:.0f}/s "
        f"(p50 {figures['publish_p50_us']:.0f} µs, p99 {figures['publish_p99_us']:.0f} µs)"
        + (
            f", drain {figures['drain_per_s']:.0f}/s ({figures['drain_s']:.2f} s)"
            if "drain_per_s" in figures
            else ""
        )
        + (
            f", relayed and drained {figures['relayed_drain_per_s']:.0f}/s"
            if "relayed_drain_per_s" in figures
            else ""
        )
        + (f", lag p95 {figures['lag_p95_ms']:.0f} ms" if "lag_p95_ms" in figures else "")
        + (
            f"; dashboards: {figures['dashboard_requests']} requests "
            f"({figures['dashboard_requests_per_s']:.1f}/s), {figures['dashboard_errors']} "
            f"errors {figures['dashboard_error_statuses'] or ''}, p95 "
            f"{figures['dashboard_p95_ms']:.0f} ms, server {figures['dashboard_server_cores']:.2f} "
            "cores"
            if "dashboard_requests" in figures
            else ""
        )
    )


def memory_line(memory: Mapping[str, Any]) -> str:
    return (
        f"memory: {memory['rss_early_mib']:.1f} MiB after {memory['jobs_early']} "
        f"jobs, {memory['rss_late_mib']:.1f} MiB after {memory['jobs_late']} "
        f"({memory['growth'] * 100:+.1f}%); main process "
        f"{memory['main_rss_early_mib']:.1f} -> {memory['main_rss_late_mib']:.1f} MiB"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
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


def format_report(
    meta: Mapping[str, Any],
    summary: Mapping[str, Mapping[str, float]],
    r: Mapping[str, Mapping[str, Any]],
) -> str:
    """One database's rounds: each side's medians, and the layer/bare ratios (`ratios`)."""
    bare, layer = summary["bare"], summary["layer"]
    lines = [
        f"make bench: N={meta['n']} noop tasks, {meta['rounds']} interleaved round(s) "
        f"(bare, layer, ...): each side's medians; ratios: the median of per-round ratios "
        f"(lowest-highest round, rounds)",
        f"layer database: {meta['database']}",
        f"broker: private redis-server {meta['machine']['redis_server']} at {meta['broker']}",
        "",
        *table(
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
            + [["layer/bare", with_spread(r["enqueue"]), "", "", with_spread(r["drain"])]]
            + (
                [
                    [
                        "layer with dashboards polling / bare",
                        "",
                        "",
                        "",
                        with_spread(r["drain_with_dashboards"]),
                    ]
                ]
                if "drain_with_dashboards" in r
                else []
            )
            + (
                [
                    [
                        "in a transaction: layer/bare (drain: relayed/layer)",
                        with_spread(r["enqueue_in_transaction"]),
                        "",
                        "",
                        with_spread(r["relayed_drain"]) if "relayed_drain" in r else "",
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
        *table(
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
