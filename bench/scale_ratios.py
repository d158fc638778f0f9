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
3. per figure (enqueue, drain, enqueue in a transaction): the median over the rounds
   of loaded / empty, PASS at 0.95 or more.

`make bench` runs this after its PostgreSQL rounds (skip it with `--no-scale`; `--quick`
skips it). On its own:

    .venv/bin/python -m bench.scale_ratios --rows 200000 --n 2000 --rounds 2

`--server HOST:PORT` points it at another PostgreSQL server than 127.0.0.1:5432 (trust
auth, user postgres), e.g. a private cluster that no other session restarts mid-run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench import processes, report, scale
from bench import run as bench_run
from bench.figures import median, ratio
from bench.layer_db import PRELOADED_JOB_ID_ENV, PRELOADED_RESULT_ID_ENV
from devstack.redis_server import RedisServer

DEFAULT_ROWS = 10_000_000
# Issue 4: "the enqueue/drain ratios fall by no more than 5% from the empty-table figures".
RATIO_KEPT_TARGET = 0.95


TABLES = ("empty", "loaded")
# The figures compared, as (side, per-round figure, key, label).
FIGURES = (
    ("layer", "enqueue_per_s", "enqueue", "enqueue"),
    ("layer", "drain_per_s", "drain", "drain"),
    ("layer-atomic", "enqueue_per_s", "enqueue_in_transaction", "enqueue in a transaction"),
)


def loaded_rounds(
    options: bench_run.Options,
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
        "empty": bench_run.Bench(options, server, empty_url, run_dir / "empty", redis_db=1),
        "loaded": bench_run.Bench(options, server, loaded_url, run_dir / "loaded", redis_db=0),
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
        for number in range(1, options.rounds + 1):
            order = TABLES if number % 2 else TABLES[::-1]
            runs += paired_round(benches, order, number, options.rounds)
    finally:
        processes.stop_all()
        for bench in benches.values():
            with contextlib.suppress(Exception):
                bench.layer_db("reset")
    return {
        "database": bench_run.redacted(loaded_url),
        "empty_database": bench_run.redacted(empty_url),
        "rows": rows,
        "load": timings,
        "marks": {key: int(value) for key, value in marks.items()},
        "queries": queries,
        "runs": runs,
    }


def admin_and_dashboard_queries(loaded: bench_run.Bench, rows: int) -> list[dict[str, Any]]:
    """The admin's and the dashboard's questions timed on the loaded table (bench.scale's
    `measure`, in a process of the layer's settings): p50/p95 ms per question."""
    env = {**loaded.layer_env, "ALLOWED_HOSTS": "testserver"}
    log = loaded.log("queries")
    # Production settings serve hashed static files: the admin pages need the manifest.
    processes.run(["manage.py", "collectstatic", "--no-input", "-v", "0"], env, log, 600)
    out = processes.run(["-m", "bench.scale", "--rows", str(rows), "--measure-only"], env, log, 600)
    queries = json.loads(out.strip().splitlines()[-1])
    for query in queries:
        print(
            f"bench: {query['question']}: p50 {query['p50_ms']:.1f} ms, "
            f"p95 {query['p95_ms']:.1f} ms",
            flush=True,
        )
    return queries


def paired_round(
    benches: Mapping[str, bench_run.Bench], order: tuple[str, ...], number: int, rounds: int
) -> list[dict[str, Any]]:
    """One round of both layers, `order[0]` first; their figures, tagged by table."""
    first, second = (benches[table] for table in order)
    figures: list[dict[str, Any]] = []

    def keep(table: str, result: dict[str, Any]) -> None:
        result["table"] = table
        figures.append(result)
        prefix = f"round {number}/{rounds} {result['side']:12} {table:6}: "
        print(bench_run.round_line(prefix, result), flush=True)

    for side in ("layer", "layer-atomic"):
        first.fresh_state()  # FLUSHALL: both layers' Redis databases
        second.layer_db("reset")
        produced = bench_run.interleave(
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


def summarize(entry: dict[str, Any]) -> dict[str, Any]:
    """Per figure: each table's median, and loaded / empty per round and its median."""
    runs = entry["runs"]
    comparison: dict[str, dict[str, Any]] = {}
    for side, figure, key, _label in FIGURES:
        per_table = {
            table: {
                run["round"]: run[figure]
                for run in runs
                if run["side"] == side and run["table"] == table
            }
            for table in TABLES
        }
        paired = sorted(set(per_table["empty"]) & set(per_table["loaded"]))
        round_ratios = [ratio(per_table["loaded"][n], per_table["empty"][n]) for n in paired]
        comparison[key] = {
            "empty": median(list(per_table["empty"].values())),
            "loaded": median(list(per_table["loaded"].values())),
            "round_ratios": round_ratios,
            "loaded_over_empty": median(round_ratios),
        }
    for table in TABLES:
        lags = [run["lag_p95_ms"] for run in runs if run["table"] == table and "lag_p95_ms" in run]
        comparison[f"lag_p95_ms_{table}"] = {"median": median(lags)}
    entry["comparison"] = comparison
    return entry


def verdicts(loaded: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One line per figure for the targets table: loaded / empty >= 0.95."""
    comparison = loaded["comparison"]
    where = f"PostgreSQL, {loaded['rows']:,} rows / empty"
    lines: list[dict[str, Any]] = []
    for _side, _figure, key, label in FIGURES:
        figures = comparison[key]
        rounds = ", ".join(f"{value:.2f}" for value in figures["round_ratios"])
        lines.append(
            {
                "figure": f"layer {label}, {where} (median of rounds)",
                "value": figures["loaded_over_empty"],
                "unit": "",
                "target": f">= {RATIO_KEPT_TARGET} (rounds {rounds})",
                "pass": figures["loaded_over_empty"] >= RATIO_KEPT_TARGET,
            }
        )
    for query in loaded.get("queries", ()):
        lines.append(
            {
                "figure": f"{query['question']}, p95, {loaded['rows']:,} rows",
                "value": query["p95_ms"],
                "unit": "ms",
                "target": f"< {scale.P95_TARGET_MS:.0f} (p50 {query['p50_ms']:.1f})",
                "pass": query["p95_ms"] < scale.P95_TARGET_MS,
            }
        )
    lines.append(
        {
            "figure": f"visibility lag p95, PostgreSQL, {loaded['rows']:,} rows",
            "value": comparison["lag_p95_ms_loaded"]["median"],
            "unit": "ms",
            "target": f"reported (empty {comparison['lag_p95_ms_empty']['median']:.0f})",
            "pass": True,
        }
    )
    return lines


def format_report(loaded: Mapping[str, Any]) -> str:
    """The paired rounds, figure by figure, with the load's timings."""
    load = loaded["load"]
    rows = []
    for _side, _figure, key, label in FIGURES:
        figures = loaded["comparison"][key]
        rows.append(
            [
                f"layer {label} /s",
                f"{figures['empty']:.0f}",
                f"{figures['loaded']:.0f}",
                ", ".join(f"{value:.3f}" for value in figures["round_ratios"]),
                f"{figures['loaded_over_empty']:.3f}",
            ]
        )
    header = ["figure", "empty", "loaded", "loaded/empty by round", "median"]
    return "\n".join(
        [
            f"The layer on an empty table and on {loaded['rows']:,} finished jobs, paired "
            f"in each round (loaded in {load['total_s']:.0f} s: copy {load['copy_s']:.0f}, "
            f"insert {load['insert_s']:.0f}, indexes {load['indexes_s']:.0f}, analyze "
            f"{load['analyze_s']:.0f}, checkpoint {load['checkpoint_s']:.0f}):",
            "",
            *report._table(header, rows),
        ]
    )


@contextlib.contextmanager
def own_database(stamp: str, server: str) -> Iterator[str]:
    """A database of the bench's own on the PostgreSQL at `server`, dropped afterwards."""
    import psycopg

    name = f"bench_layer_{stamp.lower()}"
    with psycopg.connect(
        f"postgresql://postgres@{server}/postgres", autocommit=True, connect_timeout=5
    ) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgres://postgres@{server}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def parse_args(argv: list[str] | None) -> tuple[bench_run.Options, int, str]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale_ratios",
        description="Enqueue/drain ratios on an empty and on a loaded job table (PostgreSQL).",
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to load")
    parser.add_argument("--n", type=int, default=20_000, help="tasks per run (default 20000)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds on each table (default 3)"
    )
    parser.add_argument(
        "--server",
        default="127.0.0.1:5432",
        help="the PostgreSQL server (HOST:PORT, trust auth as postgres; default 127.0.0.1:5432)",
    )
    args = parser.parse_args(argv)
    if args.n <= 100 or args.rounds < 1 or args.rows < 1:
        parser.error("--n must be over 100, --rounds and --rows at least 1")
    options = bench_run.Options(args.n, args.rounds, None, postgres=True, memory_jobs=0)
    return options, args.rows, args.server


def main(argv: list[str] | None = None) -> int:
    options, rows, pg_server = parse_args(argv)
    signal.signal(signal.SIGTERM, bench_run.terminate)
    signal.signal(signal.SIGHUP, bench_run.terminate)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = bench_run.VAR_BENCH / f"{stamp}-scale"
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
                "machine": bench_run.machine(redis.Redis.from_url(server.url)),
                "command": [
                    Path(sys.executable).name,
                    "-m",
                    "bench.scale_ratios",
                    *(argv or sys.argv[1:]),
                ],
            }
    except KeyboardInterrupt as exc:
        print("\ninterrupted: every process the bench started has been stopped", file=sys.stderr)
        signum = exc.signum if isinstance(exc, bench_run.Stopped) else signal.SIGINT
        return 128 + signum
    finally:
        processes.stop_all()
    summarize(loaded)
    lines = verdicts(loaded)
    document = {**meta, "scale": loaded, "targets": lines}
    results_path = bench_run.RESULTS / f"{stamp}-scale.json"
    report.write_json(results_path, document)
    print()
    print(format_report(loaded))
    print()
    print(report.format_targets(lines))
    print(f"\nraw per-round figures: {results_path.relative_to(bench_run.ROOT)}")
    return 0 if all(line["pass"] for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
