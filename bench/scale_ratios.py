"""Enqueue and drain against a 10-million-row job table: does the layer keep its speed?

Issue 4's fifth target asks that the layer/bare enqueue and drain ratios fall by no
more than 5% when the Job table holds 10,000,000 finished jobs. Bare Celery never
touches the job table, so that quotient, (layer on the loaded table / bare) / (layer
on an empty table / bare), is the layer's own loaded / empty: this module measures it
paired, both layers in the same rounds, instead of dividing two ratios taken 15-25
minutes apart: on this shared host such quotients of the same code went from 0.70 to
1.35, more than the 5 % they are meant to resolve. On one Redis server:

1. two PostgreSQL databases of the bench's own: the empty one, and the loaded one that
   `bench.scale.load` fills with `--rows` finished jobs (COPY, one INSERT ... SELECT,
   indexes built afterwards, VACUUM ANALYZE). Each layer has its own Redis database
   index, so their queues and event streams stay apart;
2. each round: both layers publish N `noop` jobs, in parts interleaved as in
   `bench.run` (A B B A B A A B); each drains its N with a worker of its own (which goes
   first alternates by round), then both publish N in a view's transaction and a
   worker's relay publishes and runs them. `bench.layer_db` is told the loaded table's
   marks (the highest Job and TaskResult ids after the load): its `reset` deletes only
   the rows above them, and `watch` and `lag` count only those;
3. per figure (enqueue, drain, enqueue in a transaction): the median of the per-round
   loaded / empty, PASS at 0.95 or more (`bench.scale_report`). While a figure's rounds
   straddle 0.95 (some below, some at or above it), another paired round is run, up to
   `--max-rounds` (default 5): the verdict is then the median of more rounds, not the
   side of 0.95 one noisy round fell on.

`make bench` runs this after its PostgreSQL rounds (skip it with `--no-scale`; `--quick`
skips it). On its own:

    .venv/bin/python -m bench.scale_ratios --rows 200000 --n 2000 --rounds 2 --max-rounds 2

`--server HOST:PORT` points it at another PostgreSQL server than 127.0.0.1:5432 (trust
auth, user postgres), e.g. a private cluster that no other session restarts mid-run.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench import processes, report, scale, scale_report
from bench.databases import own_database, redacted
from bench.layer_db import PRELOADED_JOB_ID_ENV, PRELOADED_RESULT_ID_ENV
from bench.options import Options, parse_scale_args
from bench.rounds import Bench, interleave
from bench.scale_report import TABLES
from devstack.redis_server import RedisServer


def loaded_rounds(
    options: Options,
    server: RedisServer,
    empty_url: str,
    loaded_url: str,
    run_dir: Path,
    rows: int,
) -> dict[str, Any]:
    """Load `rows` finished jobs into the database at `loaded_url` (the bench's own), then
    run the paired rounds against it and the empty one at `empty_url`; the entry for the
    results file."""
    benches = {
        "empty": Bench(options, server, empty_url, run_dir / "empty", redis_db=1),
        "loaded": Bench(options, server, loaded_url, run_dir / "loaded", redis_db=0),
    }
    for bench in benches.values():
        bench.prepare_database(own_database=True)
        bench.layer_db("reset")  # what earlier rounds left behind, if anything
    loaded = benches["loaded"]
    print(f"bench: loading {rows:,} finished jobs (bench.scale) ...", flush=True)
    started = time.monotonic()
    timings = scale.load(loaded_url.replace("postgres://", "postgresql://", 1), rows)
    timings["total_s"] = time.monotonic() - started
    print(
        "bench: loaded in "
        + ", ".join(f"{k.removesuffix('_s')} {v:.0f} s" for k, v in timings.items()),
        flush=True,
    )
    marks = dict(part.split("=") for part in loaded.layer_db("mark").split())
    loaded.layer_env[PRELOADED_JOB_ID_ENV] = marks["jobs"]
    loaded.layer_env[PRELOADED_RESULT_ID_ENV] = marks["results"]
    above = loaded.layer_db("rows").strip()
    if above != "jobs=0 results=0":
        raise RuntimeError(f"rows above the marks {marks} right after the load: {above}")
    queries = admin_and_dashboard_queries(loaded, rows)
    print(
        f"bench: N={options.n}, {options.rounds} paired round(s), the layer on an empty "
        f"table and on {rows:,} rows (kept: Job ids <= {marks['jobs']}, TaskResult ids "
        f"<= {marks['results']}); logs in {run_dir}",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    try:
        number = 0
        while number < options.rounds or (
            number < options.max_rounds and scale_report.undecided(runs)
        ):
            number += 1
            if number > options.rounds:
                print(
                    f"bench: rounds straddle {scale_report.RATIO_KEPT_TARGET} for "
                    f"{', '.join(scale_report.undecided(runs))}: paired round {number} "
                    f"(at most {options.max_rounds})",
                    flush=True,
                )
            order = TABLES if number % 2 else TABLES[::-1]
            runs += paired_round(benches, order, number, max(options.rounds, number))
    finally:
        processes.stop_all()
        for bench in benches.values():
            with contextlib.suppress(Exception):
                bench.layer_db("reset")
    return {
        "database": redacted(loaded_url),
        "empty_database": redacted(empty_url),
        "rows": rows,
        "load": timings,
        "marks": {key: int(value) for key, value in marks.items()},
        "queries": queries,
        "runs": runs,
    }


def admin_and_dashboard_queries(loaded: Bench, rows: int) -> list[dict[str, Any]]:
    """The admin's and the dashboard's questions timed on the loaded table (bench.scale's
    `measure`, in a process of the layer's settings): p50/p95 ms per question."""
    env = {**loaded.layer_env, "ALLOWED_HOSTS": "testserver"}
    log = loaded.log("queries")
    # Production settings serve hashed static files: the admin pages need the manifest.
    processes.run(["manage.py", "collectstatic", "--no-input", "-v", "0"], env, log, 600)
    # 100 samples of each of some twenty pages: minutes, more when a page is slow.
    out = processes.run(
        ["-m", "bench.scale", "--rows", str(rows), "--measure-only"], env, log, 1800
    )
    queries = json.loads(out.strip().splitlines()[-1])
    for query in queries:
        if "failed" in query:
            print(f"bench: {query['question']}: {query['failed']}", flush=True)
            continue
        print(
            f"bench: {query['question']}: p50 {query['p50_ms']:.1f} ms, "
            f"p95 {query['p95_ms']:.1f} ms",
            flush=True,
        )
    return queries


def paired_round(
    benches: Mapping[str, Bench], order: tuple[str, ...], number: int, rounds: int
) -> list[dict[str, Any]]:
    """One round of both layers, `order[0]` first; their figures, tagged by table."""
    first, second = (benches[table] for table in order)
    figures: list[dict[str, Any]] = []

    def keep(table: str, result: dict[str, Any]) -> None:
        result["table"] = table
        figures.append(result)
        prefix = f"round {number}/{rounds} {result['side']:12} {table:6}: "
        print(report.round_line(prefix, result), flush=True)

    for side in ("layer", "layer-atomic"):
        first.fresh_state()  # FLUSHALL: both layers' Redis databases
        second.layer_db("reset")
        produced = interleave(
            lambda calls, part, s=side: first.produce(s, number, calls, part),
            lambda calls, part, s=side: second.produce(s, number, calls, part),
            first.n,
        )
        for table, bench, made in zip(order, (first, second), produced, strict=True):
            if side == "layer":
                keep(table, bench.layer_round(number, made))
            else:
                keep(table, bench.atomic_enqueue_round(number, side, made))
    return figures


def main(argv: list[str] | None = None) -> int:
    options, rows, pg_server = parse_scale_args(argv)
    processes.stop_on_signals()
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = processes.VAR_BENCH / f"{stamp}-scale"
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with (
            RedisServer() as server,
            own_database(f"{stamp}e", pg_server) as empty_url,
            own_database(f"{stamp}l", pg_server) as loaded_url,
        ):
            loaded = loaded_rounds(options, server, empty_url, loaded_url, run_dir, rows)
            meta = {
                "started_at": started.isoformat(),
                "n": options.n,
                "rounds": options.rounds,
                "broker": server.url,
                "machine": processes.machine(
                    redis.Redis.from_url(server.url).info("server")["redis_version"]
                ),
                "command": [
                    Path(sys.executable).name,
                    "-m",
                    "bench.scale_ratios",
                    *(argv or sys.argv[1:]),
                ],
            }
    except KeyboardInterrupt as exc:
        return processes.exit_status(exc)
    finally:
        processes.stop_all()
    scale_report.summarize(loaded)
    lines = scale_report.verdicts(loaded)
    document = {**meta, "scale": loaded, "targets": lines}
    results_path = processes.RESULTS / f"{stamp}-scale.json"
    report.write_json(results_path, document)
    print()
    print(scale_report.format_report(loaded))
    print()
    print(report.format_targets(lines))
    print(f"\nraw per-round figures: {results_path.relative_to(processes.ROOT)}")
    return 0 if all(line["pass"] for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
