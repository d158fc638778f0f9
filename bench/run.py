"""`make bench`: the task layer against plain Celery, in one run, on one private Redis.

The method is perf-baseline.md's, so the figures compare with it (docs/benchmarks.md).
This module is the run's plan: the rounds on SQLite (`bench.rounds`), the worker memory
check (`bench.memory`), the rounds on PostgreSQL, the 10M-row part
(`bench.scale_ratios`); then the tables and the PASS/FAIL targets (`bench.report`,
`bench.scale_report`). Its options are `bench.options`'.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import memory, processes, report, scale_ratios, scale_report
from bench.databases import own_database, redacted
from bench.options import Options, parse_run_args
from bench.rounds import Bench
from devstack.redis_server import RedisServer


def run_on(
    options: Options, server: RedisServer, database_url: str, run_dir: Path, own: bool
) -> Bench:
    """The rounds of bare and layer on one database."""
    bench = Bench(options, server, database_url, run_dir)
    print(
        f"bench: N={options.n}, {options.rounds} round(s); Redis {server.url}; "
        f"database {redacted(database_url)}; logs in {run_dir / 'logs'}",
        flush=True,
    )
    bench.prepare_database(own_database=own)
    try:
        bench.run()
    finally:
        processes.stop_all()
        with contextlib.suppress(Exception):
            bench.layer_db("reset")
    return bench


def measure(options: Options, stamp: str, run_dir: Path) -> dict[str, Any]:
    """Every part of the run, in order; the raw figures (no verdicts yet)."""
    own_sqlite = run_dir / "layer.sqlite3"
    databases: dict[str, dict[str, Any]] = {}
    found: dict[str, Any] = {"databases": databases, "memory": None, "scale": None}
    try:
        with RedisServer() as server:
            first_url = options.database_url or f"sqlite:///{own_sqlite}"
            label = "given database" if options.database_url else "SQLite"
            bench = run_on(
                options, server, first_url, run_dir / "db1", options.database_url is None
            )
            databases[label] = {"database": redacted(first_url), "runs": bench.runs}
            if options.memory_jobs:
                print(f"bench: memory check over {options.memory_jobs} jobs", flush=True)
                found["memory"] = memory.memory_check(bench, options.memory_jobs)
                print(report.memory_line(found["memory"]), flush=True)
                with contextlib.suppress(Exception):
                    bench.layer_db("reset")
            if options.postgres:
                with own_database(stamp, optional=True) as pg_url:
                    if pg_url:
                        pg = run_on(options, server, pg_url, run_dir / "db2", True)
                        databases["PostgreSQL"] = {"database": redacted(pg_url), "runs": pg.runs}
                        if options.scale_rows:
                            found["scale"] = loaded_table_rounds(
                                options, server, pg_url, run_dir, stamp
                            )
            found["broker"] = server.url
            found["machine"] = processes.machine(bench.redis.info("server")["redis_version"])
    finally:
        processes.stop_all()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{own_sqlite}{suffix}").unlink(missing_ok=True)
    return found


def loaded_table_rounds(
    options: Options, server: RedisServer, empty_url: str, run_dir: Path, stamp: str
) -> dict[str, Any] | None:
    """The layer on `empty_url` (the PostgreSQL rounds' database, emptied) against a
    second database of the bench's own holding `options.scale_rows` finished jobs."""
    with own_database(f"{stamp}l", optional=True) as loaded_url:
        if not loaded_url:
            return None
        return scale_ratios.loaded_rounds(
            options, server, empty_url, loaded_url, run_dir / "db3", options.scale_rows
        )


def main(argv: list[str] | None = None) -> int:
    options = parse_run_args(argv)
    processes.stop_on_signals()
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = processes.VAR_BENCH / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        found = measure(options, stamp, run_dir)
    except KeyboardInterrupt as exc:
        return processes.exit_status(exc)

    meta = {
        "started_at": started.isoformat(),
        "n": options.n,
        "rounds": options.rounds,
        "broker": found["broker"],
        "machine": found["machine"],
        "command": [Path(sys.executable).name, "-m", "bench.run", *(argv or sys.argv[1:])],
    }
    results, loaded = found["databases"], found["scale"]
    for entry in results.values():
        entry["medians"] = report.medians(entry["runs"])
        entry["ratios_layer_over_bare"] = report.ratios(entry["runs"])
    verdicts = report.targets(results, found["memory"])
    if loaded is not None:
        scale_report.summarize(loaded)
        verdicts += scale_report.verdicts(loaded)
    document = {
        **meta,
        "databases": results,
        "memory": found["memory"],
        "scale": loaded,
        "targets": verdicts,
    }
    results_path = processes.RESULTS / f"{stamp}.json"
    report.write_json(results_path, document)
    for label, entry in results.items():
        print()
        print(
            report.format_report(
                {**meta, "database": f"{label}: {entry['database']}"},
                entry["medians"],
                entry["ratios_layer_over_bare"],
            )
        )
    if loaded is not None:
        print()
        print(scale_report.format_report(loaded))
    print()
    print(report.format_targets(verdicts))
    print(f"\nraw per-round figures: {results_path.relative_to(processes.ROOT)}")
    return 0 if all(v["pass"] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
