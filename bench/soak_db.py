"""The soak's reading of the layer's database: `python -m bench.soak_db wait ...`.

Polls the soak task's rows once a second until `--expected` rows exist and all are final,
or nothing changed for `--stall` seconds, or `--deadline` seconds passed; prints a
`progress` line per poll, then writes each job's facts (status, dead-lettered,
recoveries, and its runs from the side Redis) and the broker losses the layer recorded
since `--since` to `--out` as JSON. A poll that meets a cut connection closes it and
tries again at the next poll.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import django
import redis

from bench.soak_report import FINAL
from bench.soak_task import TASK_NAME

POLL_S = 1.0


def snapshot() -> tuple[int, int, int]:
    """(rows, rows final, rows succeeded) of the soak's task."""
    from tasks.models import Job

    jobs = Job.objects.filter(name=TASK_NAME)
    return (
        jobs.count(),
        jobs.filter(status__in=FINAL).count(),
        jobs.filter(status="SUCCESS").count(),
    )


def wait(expected: int, deadline_s: float, stall_s: float) -> str:
    from django.db import connection

    started = time.monotonic()
    last: tuple[int, int, int] | None = None
    changed_at = started
    while True:
        now = time.monotonic()
        try:
            seen = snapshot()
        except Exception as exc:
            print(f"poll failed: {type(exc).__name__}: {exc}", flush=True)
            connection.close()
            seen = last or (0, 0, 0)
        if seen != last:
            last, changed_at = seen, now
        rows, final, succeeded = seen
        print(
            f"progress {now - started:.0f}s rows={rows} final={final} succeeded={succeeded}",
            flush=True,
        )
        if rows >= expected and final == rows:
            return "all final"
        if now - started >= deadline_s:
            return "deadline"
        if now - changed_at >= stall_s:
            return "stalled"
        time.sleep(POLL_S)


def facts(side_url: str, runs_key: str, since: datetime) -> dict[str, Any]:
    from tasks.models import Job

    side = redis.Redis.from_url(side_url)
    runs = {k.decode(): int(v) for k, v in side.hgetall(runs_key).items()}
    rows = list(
        Job.objects.filter(name=TASK_NAME).values_list(
            "task_id", "status", "dead_lettered_at", "recoveries"
        )
    )
    jobs = [
        [status, dead is not None, recoveries or 0, runs.get(task_id, 0)]
        for task_id, status, dead, recoveries in rows
    ]
    known = {task_id for task_id, *_ in rows}
    losses: list[dict[str, Any]] = []
    try:
        from tasks.operations import recent_broker_losses

        for loss in recent_broker_losses(since):
            losses.append(
                {
                    "detected_at": loss.detected_at.isoformat(),
                    "detected_by": loss.detected_by,
                    "still_held": loss.still_held,
                    "republished": loss.republished,
                    "finished_at": loss.finished_at.isoformat() if loss.finished_at else None,
                }
            )
    except Exception as exc:  # before the recovery work lands, or a changed API
        losses.append({"error": f"{type(exc).__name__}: {exc}"})
    return {
        "jobs": jobs,
        "runs_without_row": sum(1 for task_id in runs if task_id not in known),
        "broker_losses": losses,
        "stuck": [
            {"task_id": task_id, "status": status, "runs": runs.get(task_id, 0)}
            for task_id, status, *_ in rows
            if status not in FINAL
        ][:50],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["wait"])
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--deadline", type=float, required=True)
    parser.add_argument("--stall", type=float, required=True)
    parser.add_argument("--side-redis", required=True)
    parser.add_argument("--runs-key", required=True)
    parser.add_argument("--since", required=True, help="ISO time the cell started")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    django.setup()
    ended = wait(args.expected, args.deadline, args.stall)
    print(f"wait ended: {ended}", flush=True)
    found = facts(args.side_redis, args.runs_key, datetime.fromisoformat(args.since))
    found["wait_ended"] = ended
    args.out.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
