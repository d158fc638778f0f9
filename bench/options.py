"""The bench's command lines: `python -m bench.run` and `python -m bench.scale_ratios`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

DEFAULT_ROWS = 10_000_000


@dataclass
class Options:
    """What one bench run measures (from the command line)."""

    n: int
    rounds: int
    database_url: str | None
    postgres: bool = True
    memory_jobs: int = 100_000
    scale_rows: int = 0  # PostgreSQL rounds again on this many preloaded jobs (0: not)
    # The 10M-row part adds paired rounds up to this many while a verdict's rounds
    # straddle its bound (bench.figures.straddles); never fewer than `rounds`.
    max_rounds: int = 0
    # A layer drain with simulated dashboards polling (bench.rounds' dashboards_round).
    dashboards: bool = False

    def __post_init__(self) -> None:
        self.max_rounds = max(self.max_rounds, self.rounds)


def parse_run_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="The task layer against plain Celery: enqueue and drain rates.",
    )
    parser.add_argument("--n", type=int, default=20_000, help="tasks per run (default 20000)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of bare + layer (default 3)"
    )
    parser.add_argument(
        "--max-rounds",
        type=int,
        default=5,
        help="paired rounds of the 10M-row part at most, when its rounds straddle a bound "
        "(default 5)",
    )
    parser.add_argument(
        "--database-url",
        help="the layer's database, e.g. postgres://postgres@127.0.0.1:5432/bench_layer; "
        "it must exist and hold no jobs (the bench empties its Job and TaskResult tables). "
        "Default: a new SQLite file under var/bench/",
    )
    parser.add_argument(
        "--no-postgres",
        action="store_true",
        help="skip the PostgreSQL runs (default: run them when 127.0.0.1:5432 answers)",
    )
    parser.add_argument(
        "--no-scale",
        action="store_true",
        help="skip the PostgreSQL rounds against a preloaded job table (bench.scale_ratios)",
    )
    parser.add_argument(
        "--scale-rows",
        type=int,
        default=DEFAULT_ROWS,
        help="finished jobs preloaded for those rounds (default 10000000)",
    )
    parser.add_argument(
        "--memory-jobs",
        type=int,
        default=100_000,
        help="jobs for the worker memory check (RSS after 5000 vs after this many; 0: skip)",
    )
    parser.add_argument(
        "--no-dashboards",
        action="store_true",
        help="skip the layer drain with 20 dashboards polling every 2 s (bench.dashboard_load)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: N=500, 1 round, memory check on 6000 jobs, SQLite only, no scale",
    )
    args = parser.parse_args(argv)
    n, rounds = (500, 1) if args.quick else (args.n, args.rounds)
    if n <= 100 or rounds < 1:
        parser.error("--n must be over 100 and --rounds at least 1")
    postgres = not (args.no_postgres or args.quick or args.database_url)
    return Options(
        n=n,
        rounds=rounds,
        database_url=args.database_url,
        postgres=postgres,
        memory_jobs=6000 if args.quick else args.memory_jobs,
        scale_rows=args.scale_rows if postgres and not args.no_scale else 0,
        max_rounds=rounds if args.quick else args.max_rounds,
        dashboards=not args.no_dashboards,
    )


def parse_scale_args(argv: list[str] | None) -> tuple[Options, int, str]:
    """`python -m bench.scale_ratios`: (options, rows to load, PostgreSQL HOST:PORT)."""
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
        "--max-rounds",
        type=int,
        default=5,
        help="paired rounds at most, when the rounds straddle a bound (default 5)",
    )
    parser.add_argument(
        "--server",
        default="127.0.0.1:5432",
        help="the PostgreSQL server (HOST:PORT, trust auth as postgres; default 127.0.0.1:5432)",
    )
    args = parser.parse_args(argv)
    if args.n <= 100 or args.rounds < 1 or args.rows < 1:
        parser.error("--n must be over 100, --rounds and --rows at least 1")
    options = Options(
        args.n, args.rounds, None, postgres=True, memory_jobs=0, max_rounds=args.max_rounds
    )
    return options, args.rows, args.server
