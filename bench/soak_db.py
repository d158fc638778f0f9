"""The soak's reading of the layer's database: `python -m bench.soak_db wait ...`.

Polls the soak task's rows once a second until `--expected` rows exist and all are final,
or nothing changed for `--stall` seconds, or `--deadline` seconds passed; prints a
`progress` line per poll (to stderr: the log), then writes each job's facts (status, dead-lettered,
recoveries, its runs from the side Redis, whether it was enqueued in a transaction) of
every job the producer listed in `--ids` and the broker losses the layer recorded
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
            print(f"poll failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            connection.close()
            seen = last or (0, 0, 0)
        if seen != last:
            last, changed_at = seen, now
        rows, final, succeeded = seen
        print(
            f"progress {now - started:.0f}s rows={rows} final={final} succeeded={succeeded}",
            file=sys.stderr,  # to the wait's log, as it goes
            flush=True,
        )
        if rows >= expected and final == rows:
            return "all final"
        if now - started >= deadline_s:
            return "deadline"
        if now - changed_at >= stall_s:
            return "stalled"
        time.sleep(POLL_S)


def facts(ids: Path, side_url: str, runs_key: str, since: datetime) -> dict[str, Any]:
    """Each enqueued job's facts: [status ("" without a row), dead-lettered, recoveries,
    runs, enqueued in a transaction], in the producer's order."""
    from tasks.models import Job

    side = redis.Redis.from_url(side_url)
    runs = {k.decode(): int(v) for k, v in side.hgetall(runs_key).items()}
    rows = {
        task_id: (status, dead is not None, recoveries or 0)
        for task_id, status, dead, recoveries in Job.objects.filter(name=TASK_NAME).values_list(
            "task_id", "status", "dead_lettered_at", "recoveries"
        )
    }
    enqueued = [line.split() for line in ids.read_text().splitlines() if line.strip()]
    jobs = [
        [*rows.get(task_id, ("", False, 0)), runs.get(task_id, 0), flag == "1"]
        for task_id, flag in enqueued
    ]
    listed = {task_id for task_id, _ in enqueued}
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
        "rows_not_listed": sum(1 for task_id in rows if task_id not in listed),
        "runs_without_row": sum(1 for task_id in runs if task_id not in rows),
        "broker_losses": losses,
        "not_final": not_final(rows, runs, enqueued),
    }


def not_final(
    rows: dict[str, tuple[str, bool, int]], runs: dict[str, int], enqueued: list[list[str]]
) -> list[dict[str, Any]]:
    """The jobs not final at the end (the first 100), with the result Celery stored for
    each, if any (a SUCCESS there beside a SENT row is a record that never caught up),
    and the broker's key that holds its message, if one does (`ae.undeliver`: published
    to an exchange with no queue bound)."""
    from django_celery_results.models import TaskResult

    from tasks.broker import broker_url
    from tasks.broker.loss import holdings

    stuck = [
        (task_id, flag) for task_id, flag in enqueued if rows.get(task_id, ("",))[0] not in FINAL
    ][:100]
    results = dict(
        TaskResult.objects.filter(task_id__in=[t for t, _ in stuck]).values_list(
            "task_id", "status"
        )
    )
    wanted = {task_id for task_id, _ in stuck}
    held_in: dict[str, str] = {}
    if wanted:
        try:
            held_in = {t: key for t, key in holdings(broker_url()) if t in wanted}
        except (redis.RedisError, OSError) as exc:
            held_in = dict.fromkeys(wanted, f"broker unreadable: {exc}")
    return [
        {
            "task_id": task_id,
            "status": rows.get(task_id, ("",))[0] or "no row",
            "held_in": held_in.get(task_id, ""),
            "runs": runs.get(task_id, 0),
            "in_transaction": flag == "1",
            "stored_result": results.get(task_id, ""),
        }
        for task_id, flag in stuck
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["wait"])
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--deadline", type=float, required=True)
    parser.add_argument("--stall", type=float, required=True)
    parser.add_argument("--side-redis", required=True)
    parser.add_argument("--runs-key", required=True)
    parser.add_argument("--since", required=True, help="ISO time the cell started")
    parser.add_argument("--ids", type=Path, required=True, help="the producer's list")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    django.setup()
    ended = wait(args.expected, args.deadline, args.stall)
    print(f"wait ended: {ended}", file=sys.stderr, flush=True)
    found = facts(args.ids, args.side_redis, args.runs_key, datetime.fromisoformat(args.since))
    found["wait_ended"] = ended
    args.out.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
