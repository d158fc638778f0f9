"""Enqueue and drain against a 10-million-row job table: do the ratios hold?

Issue 4's fifth target asks that the layer/bare enqueue and drain ratios fall by no
more than 5% when the Job table holds 10,000,000 finished jobs. On one PostgreSQL
database of the bench's own, in one run, on one Redis:

1. the empty-table rounds: `bench.run`'s interleaved bare / layer / layer-atomic rounds,
   every layer round on emptied tables (`make bench` reuses its PostgreSQL rounds);
2. the load: `bench.scale.load` fills the same database with `--rows` finished jobs
   (COPY, one INSERT ... SELECT, indexes built afterwards, VACUUM ANALYZE);
3. the loaded rounds: the same rounds again, with `bench.layer_db` told the marks (the
   highest Job and TaskResult ids after the load). Its `reset` then deletes only the
   rows above them, the rounds' own, along the primary key, and `watch` and `lag` count
   only those: the preloaded rows stay for every round;
4. per ratio (enqueue, drain, enqueue in a transaction): PASS when the loaded ratio is
   at least 0.95 x the empty-table ratio. Medians over the rounds, as everywhere in the
   bench: the machine is shared and noisy.

`make bench` runs this after its PostgreSQL rounds (skip it with `--no-scale`; `--quick`
skips it). On its own, with empty-table rounds of its own:

    .venv/bin/python -m bench.scale_ratios --rows 200000 --n 2000 --rounds 2

`--server HOST:PORT` points it at another PostgreSQL server than 127.0.0.1:5432 (trust
auth, user postgres), e.g. a private cluster that no other session restarts mid-run.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import processes, report, scale
from bench import run as bench_run
from bench.figures import ratio
from bench.layer_db import PRELOADED_JOB_ID_ENV, PRELOADED_RESULT_ID_ENV
from devstack.redis_server import RedisServer

DEFAULT_ROWS = 10_000_000
# Issue 4: "the enqueue/drain ratios fall by no more than 5% from the empty-table figures".
RATIO_KEPT_TARGET = 0.95
RATIOS = (
    ("enqueue", "enqueue ratio"),
    ("drain", "drain ratio"),
    ("enqueue_in_transaction", "enqueue ratio in a transaction"),
)


def loaded_rounds(
    options: bench_run.Options,
    server: RedisServer,
    database_url: str,
    run_dir: Path,
    rows: int,
) -> dict[str, Any]:
    """Load `rows` finished jobs into the (bench's own, migrated) database, then run the
    interleaved rounds against them; the entry for the results file."""
    bench = bench_run.Bench(options, server, database_url, run_dir)
    bench.prepare_database(own_database=True)
    bench.layer_db("reset")  # what the empty-table rounds left behind, if anything
    print(f"bench: loading {rows:,} finished jobs (bench.scale) ...", flush=True)
    started = time.monotonic()
    timings = scale.load(database_url.replace("postgres://", "postgresql://", 1), rows)
    timings["total_s"] = time.monotonic() - started
    print(
        "bench: loaded in "
        + ", ".join(f"{k.removesuffix('_s')} {v:.0f} s" for k, v in timings.items()),
        flush=True,
    )
    marks = dict(part.split("=") for part in bench.layer_db("mark").split())
    bench.layer_env[PRELOADED_JOB_ID_ENV] = marks["jobs"]
    bench.layer_env[PRELOADED_RESULT_ID_ENV] = marks["results"]
    above = bench.layer_db("rows").strip()
    if above != "jobs=0 results=0":
        raise RuntimeError(f"rows above the marks {marks} right after the load: {above}")
    print(
        f"bench: N={options.n}, {options.rounds} round(s) against {rows:,} rows "
        f"(kept: Job ids <= {marks['jobs']}, TaskResult ids <= {marks['results']}); "
        f"logs in {run_dir / 'logs'}",
        flush=True,
    )
    try:
        bench.run()
    finally:
        processes.stop_all()
        with contextlib.suppress(Exception):
            bench.layer_db("reset")
    return {
        "database": bench_run.redacted(database_url),
        "rows": rows,
        "load": timings,
        "marks": {key: int(value) for key, value in marks.items()},
        "runs": bench.runs,
    }


def summarize(entry: dict[str, Any]) -> dict[str, Any]:
    """Medians and layer/bare ratios, as `bench.run` adds them to each database's entry."""
    entry["medians"] = report.medians(entry["runs"])
    entry["ratios_layer_over_bare"] = report.ratios(entry["medians"])
    return entry


def verdicts(empty: Mapping[str, Any], loaded: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One line per ratio for the targets table: loaded >= 0.95 x empty."""
    lines: list[dict[str, Any]] = []
    empty_r, loaded_r = empty["ratios_layer_over_bare"], loaded["ratios_layer_over_bare"]
    where = f"PostgreSQL, {loaded['rows']:,} rows"
    for key, label in RATIOS:
        if key not in empty_r or key not in loaded_r:
            continue
        before, after = empty_r[key], loaded_r[key]
        # The figure is loaded / empty, so the printed value reads against the 0.95 bound
        # directly; the test is the one the issue states, loaded >= 0.95 x empty.
        lines.append(
            {
                "figure": f"{label}, {where} / empty",
                "value": ratio(after, before),
                "unit": "",
                "target": f">= {RATIO_KEPT_TARGET} ({after:.3f} / {before:.3f})",
                "pass": after >= RATIO_KEPT_TARGET * before,
                "empty": before,
                "loaded": after,
            }
        )
    lag = loaded["medians"]["layer"]["lag_p95_ms"]
    lines.append(
        {
            "figure": f"visibility lag p95, {where}",
            "value": lag,
            "unit": "ms",
            "target": f"reported (empty {empty['medians']['layer']['lag_p95_ms']:.0f})",
            "pass": True,
        }
    )
    return lines


def format_comparison(empty: Mapping[str, Any], loaded: Mapping[str, Any]) -> str:
    """Empty against loaded, ratio by ratio, with the load's timings."""
    load = loaded["load"]
    before, after = empty["ratios_layer_over_bare"], loaded["ratios_layer_over_bare"]
    rows = [
        [label, f"{before[key]:.3f}", f"{after[key]:.3f}", f"{ratio(after[key], before[key]):.3f}"]
        for key, label in RATIOS
        if key in before and key in after
    ]
    return "\n".join(
        [
            f"Ratios against {loaded['rows']:,} finished jobs (loaded in "
            f"{load['total_s']:.0f} s: copy {load['copy_s']:.0f}, insert "
            f"{load['insert_s']:.0f}, indexes {load['indexes_s']:.0f}, analyze "
            f"{load['analyze_s']:.0f}, checkpoint {load['checkpoint_s']:.0f}):",
            "",
            *report._table(["layer/bare", "empty", "loaded", "loaded/empty"], rows),
        ]
    )


def format_report(
    meta: Mapping[str, Any], empty: Mapping[str, Any], loaded: Mapping[str, Any]
) -> str:
    """The loaded rounds' tables (as `bench.run` prints each database's), then the
    comparison with the empty table."""
    tables = report.format_report(
        {**meta, "database": f"PostgreSQL, {loaded['rows']:,} rows: {loaded['database']}"},
        loaded["medians"],
    )
    return f"{tables}\n\n{format_comparison(empty, loaded)}"


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
        with RedisServer() as server, own_database(stamp, pg_server) as pg_url:
            empty_bench = bench_run.run_on(options, server, pg_url, run_dir / "empty", True)
            empty = {"database": bench_run.redacted(pg_url), "runs": empty_bench.runs}
            loaded = loaded_rounds(options, server, pg_url, run_dir / "loaded", rows)
            meta = {
                "started_at": started.isoformat(),
                "n": options.n,
                "rounds": options.rounds,
                "broker": server.url,
                "machine": bench_run.machine(empty_bench.redis),
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
    summarize(empty)
    summarize(loaded)
    lines = verdicts(empty, loaded)
    document = {**meta, "empty": empty, "scale": loaded, "targets": lines}
    results_path = bench_run.RESULTS / f"{stamp}-scale.json"
    report.write_json(results_path, document)
    print()
    print(
        report.format_report(
            {**meta, "database": f"PostgreSQL, empty: {empty['database']}"}, empty["medians"]
        )
    )
    print()
    print(format_report(meta, empty, loaded))
    print()
    print(report.format_targets(lines))
    print(f"\nraw per-round figures: {results_path.relative_to(bench_run.ROOT)}")
    return 0 if all(line["pass"] for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
