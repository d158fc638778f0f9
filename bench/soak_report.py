"""`make soak`'s arithmetic: each job's facts, tallied per cell, and the table. Pure.

A job's facts come from its row (status, dead-lettered, recoveries) and from the soak's
own count of its executions (`bench.soak_task`, in a Redis the soak never kills):

- lost: a job the producer enqueued that is not final when the wait ends (or has no row
  at all) and whose body never ran to its end; split by how it was enqueued (in a
  transaction, through the relay; or a plain `.delay()`, whose row the recorder writes
  from the broker's event stream);
- unfinished: not final at the end but its body did run (a record that never caught up:
  not lost work, but reported);
- run more than once: its body ran to the end twice or more (the at-least-once cases);
- recovered: the layer published it again after the broker lost it (Job.recoveries > 0).

PASS is "0 lost".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


@dataclass(frozen=True)
class JobFacts:
    status: str  # "" when the job has no row at all
    dead_lettered: bool
    recoveries: int
    runs: int
    in_transaction: bool = False


def tally(facts: Iterable[JobFacts]) -> dict[str, int]:
    """The cell's figures over the jobs whose `.delay()` returned (one JobFacts each)."""
    counts = dict.fromkeys(
        (
            "no_row",
            "lost_in_transaction",
            "lost_plain",
            "jobs",
            "succeeded",
            "failed",
            "lost",
            "unfinished",
            "more_than_once",
            "dead_lettered",
            "recovered",
        ),
        0,
    )
    for job in facts:
        counts["jobs"] += 1
        final = job.status in FINAL
        counts["succeeded"] += job.status == "SUCCESS"
        counts["failed"] += job.status == "FAILURE"
        counts["no_row"] += job.status == ""
        if not final and job.runs == 0:
            counts["lost"] += 1
            counts["lost_in_transaction" if job.in_transaction else "lost_plain"] += 1
        elif not final:
            counts["unfinished"] += 1
        counts["more_than_once"] += job.runs > 1
        counts["dead_lettered"] += job.dead_lettered
        counts["recovered"] += job.recoveries > 0
    return counts


def passed(counts: dict[str, int]) -> bool:
    return counts["lost"] == 0


COLUMNS = (
    ("database", "database"),
    ("broker", "broker"),
    ("jobs", "jobs"),
    ("succeeded", "succeeded"),
    ("lost", "lost"),
    ("lost_in_transaction", "of which in tx"),
    ("no_row", "no row"),
    ("unfinished", "unfinished"),
    ("more_than_once", "run >1"),
    ("dead_lettered", "dead-lettered"),
    ("recovered", "recovered"),
    ("verdict", "0 lost"),
)


def format_table(cells: list[dict[str, Any]]) -> str:
    """One line per database x broker mode; `cells` hold `database`, `broker` and the
    tally (or `error` when the cell could not run)."""
    rows = [[title for _, title in COLUMNS]]
    for cell in cells:
        if cell.get("error"):
            rows.append([cell["database"], cell["broker"], *["-"] * (len(COLUMNS) - 3), "FAIL"])
            continue
        verdict = "PASS" if passed(cell) else "FAIL"
        rows.append([str(cell.get(key, "")) if key != "verdict" else verdict for key, _ in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for number, row in enumerate(rows):
        cells_text = [
            value.ljust(widths[i]) if i < 2 else value.rjust(widths[i])
            for i, value in enumerate(row)
        ]
        lines.append("  ".join(cells_text).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def exit_status(cells: list[dict[str, Any]]) -> int:
    """1 when any cell failed (lost jobs, or it could not run), else 0."""
    return 0 if cells and all(not c.get("error") and passed(c) for c in cells) else 1
