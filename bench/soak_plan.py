"""`make soak`'s options and its schedule of faults: pure, no process started here.

A cell is one database x one broker mode. Within a cell the faults happen in a window
of `window_s` seconds that starts when the producer starts (`schedule`):

- a random pool child of a random worker SIGKILLed about every POOL_KILL_EVERY_S seconds
  (jittered, so the kill lands at a different point of a task's life each time);
- a whole worker (its main process, pool and recorder: its process group) SIGKILLed once,
  twice when the window is long enough, and started again RESTART_AFTER_S later;
- every database connection to the soak's database cut every DB_CUT_EVERY_S seconds
  (PostgreSQL: pg_terminate_backend; SQLite has no connection to cut);
- the broker SIGKILLed once, at BROKER_KILL_AT of the window, and started again on the
  same port (with or without its append-only file).

The producer spreads the N jobs over the first PRODUCE_FOR of the window, and the task
sleeps long enough that two workers of two processes need DRAIN_FOR of the window to run
them (`task_seconds`): the broker's queue holds a backlog when the broker is killed,
which is what a broker that keeps nothing on disk loses.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

POOL_KILL_EVERY_S = 10.0
POOL_KILL_JITTER_S = 2.0
DB_CUT_EVERY_S = 15.0
RESTART_AFTER_S = 3.0
BROKER_KILL_AT = 0.45
WORKER_KILLS_AT = (0.25, 0.7)  # the second only when the window is TWO_KILLS_FROM_S or more
TWO_KILLS_FROM_S = 40.0
PRODUCE_FOR = 0.6
DRAIN_FOR = 0.8
WORKERS = 2
CONCURRENCY = 2
MIN_TASK_SECONDS = 0.005

DATABASES = ("sqlite", "postgresql")
BROKER_MODES = ("no-persistence", "aof")


@dataclass(frozen=True)
class Fault:
    """One fault at `at` seconds into the window; `worker` is an index for worker faults."""

    at: float
    kind: str  # pool-kill, worker-kill, worker-start, db-cut, broker-kill
    worker: int | None = None

    def describe(self) -> str:
        target = f" worker {self.worker + 1}" if self.worker is not None else ""
        return f"{self.at:6.1f} s  {self.kind}{target}"


def schedule(window_s: float, seed: int = 0) -> list[Fault]:
    """The faults of one cell, in time order. The same seed gives the same schedule."""
    rng = random.Random(seed)  # noqa: S311 (a schedule, not a secret)
    faults: list[Fault] = []
    at = POOL_KILL_EVERY_S
    while at < window_s:
        jittered = min(
            window_s, max(1.0, at + rng.uniform(-POOL_KILL_JITTER_S, POOL_KILL_JITTER_S))
        )
        faults.append(Fault(round(jittered, 1), "pool-kill", rng.randrange(WORKERS)))
        at += POOL_KILL_EVERY_S
    kills = WORKER_KILLS_AT if window_s >= TWO_KILLS_FROM_S else WORKER_KILLS_AT[:1]
    for number, fraction in enumerate(kills):
        worker = number % WORKERS
        faults.append(Fault(round(fraction * window_s, 1), "worker-kill", worker))
        faults.append(
            Fault(round(fraction * window_s + RESTART_AFTER_S, 1), "worker-start", worker)
        )
    at = DB_CUT_EVERY_S
    while at < window_s:
        faults.append(Fault(at, "db-cut"))
        at += DB_CUT_EVERY_S
    faults.append(Fault(round(BROKER_KILL_AT * window_s, 1), "broker-kill"))
    order = {"worker-kill": 0, "worker-start": 1, "broker-kill": 2, "db-cut": 3, "pool-kill": 4}
    return sorted(faults, key=lambda f: (f.at, order[f.kind]))


def task_seconds(n: int, window_s: float) -> float:
    """How long the soak task sleeps: WORKERS x CONCURRENCY processes need DRAIN_FOR of
    the window for n jobs (never less than MIN_TASK_SECONDS)."""
    slots = WORKERS * CONCURRENCY
    return max(MIN_TASK_SECONDS, round(slots * DRAIN_FOR * window_s / n, 4))


def produce_seconds(window_s: float) -> float:
    return PRODUCE_FOR * window_s


@dataclass(frozen=True)
class SoakOptions:
    n: int
    window_s: float
    drain_s: float  # the longest wait after the window for every job to be final
    stall_s: float  # stop waiting earlier when nothing changed for this long
    databases: tuple[str, ...]
    brokers: tuple[str, ...]
    seed: int
    quick: bool = False


FULL = {"n": 2000, "window_s": 45.0, "drain_s": 90.0, "stall_s": 40.0}
QUICK = {"n": 300, "window_s": 25.0, "drain_s": 45.0, "stall_s": 25.0}


def parse_args(argv: list[str] | None) -> SoakOptions:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="The chaos run: N jobs under pool, worker, database and broker faults; "
        "PASS when none is lost.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a one-minute smoke run: "
        f"N={QUICK['n']}, a {QUICK['window_s']:g} s window, SQLite and the "
        "broker without persistence only (unless --databases/--brokers)",
    )
    parser.add_argument("--n", type=int, help=f"jobs per cell (default {FULL['n']})")
    parser.add_argument(
        "--window",
        type=float,
        dest="window_s",
        help=f"seconds of faults per cell (default {FULL['window_s']:g})",
    )
    parser.add_argument(
        "--drain",
        type=float,
        dest="drain_s",
        help=f"longest wait after the window for every job to end (default {FULL['drain_s']:g} s)",
    )
    parser.add_argument(
        "--stall",
        type=float,
        dest="stall_s",
        help="stop waiting once no job changed state for this long "
        f"(default {FULL['stall_s']:g} s)",
    )
    parser.add_argument(
        "--databases",
        help=f"comma-separated, of {','.join(DATABASES)} "
        "(default both; PostgreSQL when 127.0.0.1:5432 answers)",
    )
    parser.add_argument(
        "--brokers", help=f"comma-separated, of {','.join(BROKER_MODES)} (default both)"
    )
    parser.add_argument("--seed", type=int, default=23, help="the faults' random seed")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    values = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    databases = _choices(
        parser, args.databases, DATABASES, ("sqlite",) if args.quick else DATABASES
    )
    brokers = _choices(
        parser, args.brokers, BROKER_MODES, ("no-persistence",) if args.quick else BROKER_MODES
    )
    if values["n"] < 2:
        parser.error("--n must be at least 2 (half the jobs are enqueued in transactions)")
    if values["window_s"] < 10:
        parser.error("--window must be at least 10 s")
    return SoakOptions(
        n=int(values["n"]),
        window_s=float(values["window_s"]),
        drain_s=float(values["drain_s"]),
        stall_s=float(values["stall_s"]),
        databases=databases,
        brokers=brokers,
        seed=args.seed,
        quick=args.quick,
    )


def _choices(
    parser: argparse.ArgumentParser,
    given: str | None,
    allowed: tuple[str, ...],
    default: tuple[str, ...],
) -> tuple[str, ...]:
    if not given:
        return default
    chosen = tuple(part.strip() for part in given.split(",") if part.strip())
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        parser.error(f"choose from {', '.join(allowed)} (got {given!r})")
    return chosen
