"""The drain with twenty dashboards polling, on its own (the rest of `make bench` left out).

    python -m bench.dashboard_drain [--n 20000] [--rounds 1] [--sqlite | --database-url URL]

Per round, as in `make bench` (bench.rounds): bare's and the layer's N publishes
interleaved, bare's drain, the layer's drain; then the layer's drain of N more while
twenty simulated dashboards poll a gunicorn of the project on the same database every
2 s (bench.dashboard_load). Prints both drain ratios as lines of the targets table. On a
PostgreSQL database of its own when 127.0.0.1:5432 answers, else (or with `--sqlite`)
on a new SQLite file; one private Redis, as `make bench`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import processes, report
from bench.databases import own_database, redacted
from bench.options import Options
from bench.rounds import Bench
from devstack.redis_server import RedisServer


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_drain", description=__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="tasks per drain (default 20000)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (default 1)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite", action="store_true", help="a new SQLite file, not PostgreSQL")
    where.add_argument(
        "--database-url", help="a database of your own, holding no jobs (it is emptied)"
    )
    args = parser.parse_args(argv)
    if args.n <= 100 or args.rounds < 1:
        parser.error("--n must be over 100 and --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    options = Options(
        args.n, args.rounds, args.database_url, postgres=False, memory_jobs=0, dashboards=True
    )
    processes.stop_on_signals()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = processes.VAR_BENCH / f"{stamp}-dashboards"
    run_dir.mkdir(parents=True, exist_ok=True)
    sqlite = run_dir / "layer.sqlite3"
    try:
        with (
            RedisServer() as server,
            (
                contextlib.nullcontext(None)
                if args.sqlite or args.database_url
                else own_database(stamp, optional=True)
            ) as pg_url,
        ):
            url = args.database_url or pg_url or f"sqlite:///{sqlite}"
            label = "PostgreSQL" if url.startswith("postgres") else "SQLite"
            bench = Bench(options, server, url, run_dir)
            print(
                f"bench: N={options.n}, {options.rounds} round(s) of bare, layer and layer "
                f"with dashboards; database {redacted(url)}; logs in {run_dir / 'logs'}",
                flush=True,
            )
            bench.prepare_database(own_database=args.database_url is None)
            try:
                for number in range(1, options.rounds + 1):
                    bench.drain_pair(number)
                    bench.keep(number, bench.dashboards_round(number))
            finally:
                processes.stop_all()
                with contextlib.suppress(Exception):
                    bench.layer_db("reset")
    except KeyboardInterrupt as exc:
        return processes.exit_status(exc)
    finally:
        processes.stop_all()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite}{suffix}").unlink(missing_ok=True)
    entry = {"database": redacted(url), "runs": bench.runs}
    entry["ratios_layer_over_bare"] = report.ratios(bench.runs)
    lines = [
        line
        for line in report.targets({label: entry}, None)
        if line["figure"].startswith(("drain ratio", "layer drain with the dashboards"))
    ]
    results_path = processes.RESULTS / f"{stamp}-dashboards.json"
    report.write_json(results_path, {"n": options.n, "databases": {label: entry}, "targets": lines})
    print()
    print(report.format_targets(lines))
    print(f"\nraw per-round figures: {results_path.relative_to(processes.ROOT)}")
    return 0 if all(line["pass"] for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
