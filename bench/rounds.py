"""One round of bench.run, side by side: bare Celery and the layer, or two layers.

The rounds (`Bench.run`), for each database:

1. flush the bench's Redis and empty the Job and TaskResult tables;
2. producer subprocesses publish N `noop` tasks for each side, timing every `.delay()`
   (`bench.producer`): each side's N in four parts, in the order A B B A B A A B
   (`PART_ORDER`, `interleave`), so both sides publish through the same minutes of the
   host: enqueue/s, publish p50/p99 over all parts (`bench.figures.combine`);
3. for each side, start a prefork worker (`-c 2`, `-l WARNING`) and time from its start
   until all N tasks are done: drain/s, start-up included, as in the baseline. Bare
   counts a Redis INCR done by the task; the layer waits for N Job rows SUCCESS and N
   results stored (`bench.layer_db watch`); stop the worker (SIGTERM, then SIGKILL of
   its process group);
4. unless `--no-dashboards`: flush and empty again, the layer publishes N more and
   drains them while twenty simulated dashboards poll a gunicorn of the project on the
   same database every 2 s (`dashboards_round`, bench.dashboard_load);
5. flush and empty again; both sides publish N in a view-shaped transaction, in the
   same order and parts; the layer's round goes on until a worker's relay has
   published and run all N.

Bare is `bench.bare_app` (plain Celery, no result backend); layer is this project as
deployed: `project.settings`, its Celery app, its database. bench.scale_ratios pairs two
layers (an empty and a loaded table) with the same `Bench`.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from bench import processes, report
from bench.bare_names import BROKER_URL_ENV, COUNTER_KEY, QUEUE
from bench.dashboard_load import DashboardLoad
from bench.databases import redacted
from bench.figures import combine
from bench.layer_db import PRELOADED_JOB_ID_ENV, PRELOADED_RESULT_ID_ENV
from bench.options import Options
from devstack.redis_server import RedisServer

LAYER_QUEUE = "default"  # CELERY_TASK_DEFAULT_QUEUE in project.settings
POLL_INTERVAL_S = 0.25  # the same for both sides, so both drain times carry the same error
# Not a secret: production settings only insist on having one. DEBUG stays off because
# with DEBUG on Django records every query in memory (and Celery warns of the leak):
# that would slow the layer in a way no deployment sees.
BENCH_SECRET_KEY = "bench-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105
# Set by the bench for the children; a value from the calling shell must not leak in.
OWNED_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "SECRET_KEY",
    "LOG_LEVEL",
    BROKER_URL_ENV,
    PRELOADED_JOB_ID_ENV,
    PRELOADED_RESULT_ID_ENV,
)


# Each side's N publishes in PARTS parts, interleaved in this order (`interleave`).
PART_ORDER = "ABBABAAB"
PARTS = PART_ORDER.count("A")


def with_database(url: str, database: int) -> str:
    """`url` (redis://host:port/N) pointing at Redis database `database` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


Producer = Callable[[int, str], dict[str, Any]]


def interleave(first: Producer, second: Producer, n: int) -> tuple[dict, dict]:
    """Both producers' n calls in PARTS parts each, in PART_ORDER (A = first), each
    side's parts combined (bench.figures.combine). A producer is called with the number
    of calls of that part and the part's letter (a, b, ...)."""
    sizes = [n // PARTS + (1 if k < n % PARTS else 0) for k in range(PARTS)]
    parts: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    for letter in PART_ORDER:
        done = len(parts[letter])
        produce = first if letter == "A" else second
        parts[letter].append(produce(sizes[done], chr(ord("a") + done)))
    return combine(parts["A"]), combine(parts["B"])


def child_env(**values: str) -> dict[str, str]:
    """The caller's environment minus what the bench owns, plus the given values."""
    env = {k: v for k, v in os.environ.items() if k not in OWNED_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(values)
    return env


def worker_args(app: str, queue_name: str) -> list[str]:
    """The same worker command line for both sides: only the app and queue differ."""
    return [
        *("-m", "celery", "-A", app, "worker"),
        *("-P", "prefork", "-c", "2", "-l", "WARNING", "-Q", queue_name),
    ]


@dataclass(frozen=True)
class Snapshot:
    """Clock and CPU counters at one instant: a drain is the difference of two."""

    at: float
    redis_cpu_s: float
    machine_busy_s: float
    worker_main_cpu_s: float = 0.0
    worker_children_cpu_s: float = 0.0

    @classmethod
    def take(cls, server: RedisServer, worker: subprocess.Popen[str] | None = None) -> Snapshot:
        main, children = processes.group_cpu_seconds(worker.pid) if worker else (0.0, 0.0)
        redis_pid = server.process.pid if server.process else 0
        return cls(
            at=time.monotonic(),
            redis_cpu_s=processes.cpu_seconds(redis_pid),
            machine_busy_s=processes.machine_busy_seconds(),
            worker_main_cpu_s=main,
            worker_children_cpu_s=children,
        )


@dataclass
class Bench:
    """One bench run: the private Redis, both sides' environments, the rounds' figures."""

    options: Options
    redis_server: RedisServer
    database_url: str
    run_dir: Path
    runs: list[dict[str, Any]] = field(default_factory=list)
    # The Redis database of this bench's queues and event streams: two layers on one
    # server (bench.scale_ratios' empty and loaded tables) each need their own.
    redis_db: int = 0
    static_collected: bool = False

    def __post_init__(self) -> None:
        url = with_database(self.redis_server.url, self.redis_db)
        self.redis = redis.Redis.from_url(url)
        self.bare_env = child_env(**{BROKER_URL_ENV: url})
        self.layer_env = child_env(
            DJANGO_SETTINGS_MODULE="project.settings",
            SECRET_KEY=BENCH_SECRET_KEY,
            DEBUG="0",
            LOG_LEVEL="WARNING",
            DATABASE_URL=self.database_url,
            REDIS_URL=url,
            CELERY_BROKER_URL=url,
        )
        # Generous: it allows for 10 tasks/s, a sixth of the slowest drain in the baseline.
        self.drain_timeout = 60.0 + self.options.n / 10

    @property
    def n(self) -> int:
        return self.options.n

    def log(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    # --- the layer's database ---------------------------------------------------------

    def layer_db(self, *args: str, timeout: float = 120.0) -> str:
        return processes.run(
            ["-m", "bench.layer_db", *args], self.layer_env, self.log("layer-db"), timeout
        )

    def prepare_database(self, own_database: bool) -> None:
        """Migrate, and refuse a database that already holds jobs unless it is our own.

        Every round empties the Job and TaskResult tables: pointed at a real database by
        mistake, the bench must stop before it deletes anything.
        """
        processes.run(
            ["manage.py", "migrate", "--no-input", "-v", "0"],
            self.layer_env,
            self.log("migrate"),
            timeout=600,
        )
        found = self.layer_db("rows").strip()
        if not own_database and found != "jobs=0 results=0":
            raise SystemExit(
                f"{redacted(self.database_url)} already holds rows ({found}). The bench "
                "empties the Job and TaskResult tables before every run: give it a "
                "database of its own (e.g. `CREATE DATABASE bench_layer`)."
            )

    # --- one round of one side --------------------------------------------------------

    def produce_pair(self, first: str, second: str, number: int) -> tuple[dict, dict]:
        """Both sides' N publishes, made in PARTS parts each in the order A B B A B A A B
        (A = first), and each side's parts combined (bench.figures.combine).

        Whole runs of N one side after the other put a minute between the two sides'
        publishes, and a slow spell of the shared host in that minute decided the ratio:
        the same code path could take 30 % more CPU per call in one side's minute. In
        this order a steady drift cancels, and a spell shorter than a part costs each
        side at most a quarter of its calls; with two halves (A B B A) a spell of ten
        seconds could still land on one side only.
        """
        return interleave(
            lambda calls, part: self.produce(first, number, calls, part),
            lambda calls, part: self.produce(second, number, calls, part),
            self.n,
        )

    def produce(self, side: str, number: int, calls: int, part: str = "") -> dict[str, Any]:
        out = self.run_dir / f"producer-{side}-{number}{part}.json"
        env = {
            "bare": self.bare_env,
            # Django for the application's transaction, nothing of the layer
            # (bench.bare_django_settings); the bench's Redis for the publish.
            "bare-atomic": {
                **self.bare_env,
                "DATABASE_URL": self.database_url,
                "DJANGO_SETTINGS_MODULE": "bench.bare_django_settings",
            },
        }.get(side, self.layer_env)
        # The producer's own time limit: N publishes at 10/s is far below any real rate.
        processes.run(
            ["-m", "bench.producer", side, "--n", str(calls), "--out", str(out)],
            env,
            self.log(f"producer-{side}-{number}{part}"),
            timeout=60.0 + calls / 10,
        )
        figures: dict[str, Any] = json.loads(out.read_text())
        return figures

    def check_queued(self, queue_name: str) -> int:
        queued = int(self.redis.llen(queue_name))
        if queued != self.n:
            raise RuntimeError(
                f"{queued} messages in queue {queue_name!r} after {self.n} publishes"
            )
        return queued

    def bare_round(self, number: int, produced: dict[str, Any]) -> dict[str, Any]:
        """Drain bare Celery's N published messages (the queue `produce_pair` filled)."""
        queued = self.check_queued(QUEUE)
        start = Snapshot.take(self.redis_server)
        worker = processes.start(
            worker_args("bench.bare_app", QUEUE), self.bare_env, self.log(f"worker-bare-{number}")
        )
        try:
            done_at, completed = self.wait_for_counter(worker)
            end = Snapshot.take(self.redis_server, worker)
        finally:
            processes.stop(worker)
        return self.figures("bare", number, produced, queued, start, end, done_at, completed)

    def wait_for_counter(self, worker: subprocess.Popen[str]) -> tuple[float, int]:
        """Poll the tasks' INCR counter until it reaches N; (monotonic time, count)."""
        deadline = time.monotonic() + self.drain_timeout
        while True:
            count = int(self.redis.get(COUNTER_KEY) or 0)
            now = time.monotonic()
            if count >= self.n:
                return now, count
            self.check_alive(worker, "bare", count, now > deadline)
            time.sleep(POLL_INTERVAL_S)

    def layer_round(self, number: int, produced: dict[str, Any]) -> dict[str, Any]:
        """Drain the layer's N published jobs; the visibility lag of their rows."""
        queued = self.check_queued(LAYER_QUEUE)
        start, end, done_at, completed = self.drain_layer(f"layer-{number}")
        figures = self.figures("layer", number, produced, queued, start, end, done_at, completed)
        lag = dict(part.split("=") for part in self.layer_db("lag").split()[1:])
        figures["lag_p50_ms"] = float(lag["p50_ms"])
        figures["lag_p95_ms"] = float(lag["p95_ms"])
        return figures

    def drain_layer(self, label: str) -> tuple[Snapshot, Snapshot, float, int]:
        """Start a layer worker and time it until the watcher sees N jobs SUCCESS."""
        watcher = processes.start(
            [
                *("-m", "bench.layer_db", "watch"),
                *("--n", str(self.n), "--timeout", str(self.drain_timeout)),
            ],
            self.layer_env,
            self.log(f"watcher-{label}"),
            stdout=subprocess.PIPE,
        )
        worker: subprocess.Popen[str] | None = None
        try:
            lines = processes.line_reader(watcher)
            ready = self.next_line(lines, timeout=60.0, what="the watcher to connect")
            # The producer's events may still wait in the event stream for a recorder
            # (the worker's), so not every job needs a row yet; none may be finished.
            if not ready.startswith("ready ") or " success=0 " not in ready:
                raise RuntimeError(f"unexpected state before the drain: {ready!r}")
            start = Snapshot.take(self.redis_server)
            worker = processes.start(
                worker_args("project", LAYER_QUEUE), self.layer_env, self.log(f"worker-{label}")
            )
            done_at, completed = self.wait_for_watcher(lines, worker)
            end = Snapshot.take(self.redis_server, worker)
        finally:
            if worker is not None:
                processes.stop(worker)
            processes.stop(watcher)
        return start, end, done_at, completed

    def atomic_enqueue_round(
        self, number: int, side: str, produced: dict[str, Any]
    ) -> dict[str, Any]:
        """Enqueue in a view-shaped transaction (bench.producer): `bare-atomic` is plain
        Celery published on commit; `layer-atomic` is `.delay()`, which writes the PENDING
        row with the COMMIT and leaves the publish to a worker's relay.

        So that the layer's figure is not bought by work left undone, its round goes on
        until a worker (whose relay publishes the committed rows) has run all N jobs:
        `relayed_drain_per_s` is that drain, relay included, timed like `layer`'s.
        """
        figures = {
            "round": number,
            "side": side,
            "enqueue_per_s": produced["enqueue_per_s"],
            "publish_p50_us": produced["publish_p50_us"],
            "publish_p99_us": produced["publish_p99_us"],
            "producer_cpu_us_per_publish": produced["cpu_s"] / self.n * 1e6,
        }
        if side == "bare-atomic":
            figures["queued"] = self.check_queued(QUEUE)
            return figures
        due = int(self.layer_db("due").split("=")[1])
        on_broker = int(self.redis.llen(LAYER_QUEUE))
        if due != self.n or on_broker:
            raise RuntimeError(
                f"after {self.n} enqueues in transactions: {due} rows due for the relay, "
                f"{on_broker} messages on the broker (expected {self.n} and 0)"
            )
        start, _end, done_at, completed = self.drain_layer(f"layer-atomic-{number}")
        figures["completed"] = completed
        figures["relayed_drain_s"] = done_at - start.at
        figures["relayed_drain_per_s"] = self.n / figures["relayed_drain_s"]
        return figures

    def wait_for_watcher(
        self, lines: queue.Queue[str | None], worker: subprocess.Popen[str]
    ) -> tuple[float, int]:
        """Follow the watcher's lines until `done`; (its monotonic stamp, jobs SUCCESS)."""
        deadline = time.monotonic() + self.drain_timeout + 10
        last = "nothing yet"
        while True:
            line = self.next_line(lines, timeout=self.drain_timeout + 10, what="the watcher")
            if line.startswith("done "):
                fields = dict(part.split("=") for part in line.split()[2:])
                return float(line.split()[1]), int(fields["success"])
            if line.startswith("timeout"):
                raise TimeoutError(f"layer drain did not finish in time: {line}")
            last = line
            self.check_alive(worker, "layer", last, time.monotonic() > deadline)

    @staticmethod
    def next_line(lines: queue.Queue[str | None], timeout: float, what: str) -> str:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no word from {what} in {timeout:.0f}s") from None
        if line is None:
            raise RuntimeError(f"{what} exited without finishing (see its log)")
        return line

    def check_alive(
        self, worker: subprocess.Popen[str], side: str, progress: object, late: bool
    ) -> None:
        if worker.poll() is not None:
            raise RuntimeError(
                f"{side} worker exited ({worker.returncode}) at {progress}; "
                f"see {self.run_dir / 'logs'}"
            )
        if late:
            raise TimeoutError(f"{side} drain not done after {self.drain_timeout:.0f}s: {progress}")

    def figures(
        self,
        side: str,
        number: int,
        produced: dict[str, Any],
        queued: int,
        start: Snapshot,
        end: Snapshot,
        done_at: float,
        completed: int,
    ) -> dict[str, Any]:
        """One round's raw figures: what goes into the JSON file and the medians."""
        drain_s = done_at - start.at
        cpu_window_s = end.at - start.at  # CPU counters were read at `end`, not at done_at
        return {
            "round": number,
            "side": side,
            "enqueue_per_s": produced["enqueue_per_s"],
            "publish_p50_us": produced["publish_p50_us"],
            "publish_p99_us": produced["publish_p99_us"],
            "publish_mean_us": produced["publish_mean_us"],
            "producer_cpu_us_per_publish": produced["cpu_s"] / self.n * 1e6,
            "queued": queued,
            "completed": completed,
            "drain_s": drain_s,
            "drain_per_s": self.n / drain_s,
            "worker_main_cpu_s": end.worker_main_cpu_s,
            "worker_children_cpu_s": end.worker_children_cpu_s,
            "worker_main_cores": end.worker_main_cpu_s / cpu_window_s,
            "worker_children_cores": end.worker_children_cpu_s / cpu_window_s,
            "redis_cores": (end.redis_cpu_s - start.redis_cpu_s) / cpu_window_s,
            "machine_cores": (end.machine_busy_s - start.machine_busy_s) / cpu_window_s,
        }

    def dashboards_round(self, number: int) -> dict[str, Any]:
        """The layer's drain again, while simulated dashboards poll a server of the
        project on the same database (bench.dashboard_load): against this round's bare
        drain, the drain ratio with the dashboards on (issue 21's "twenty dashboards
        refreshing every 2 s"). Its own N publishes, made after the pair's drains."""
        self.fresh_state()
        produced = combine([self.produce("layer", number, self.n, "-dashboards")])
        queued = self.check_queued(LAYER_QUEUE)
        if not self.static_collected:
            # Production settings serve hashed static files: pages need the manifest.
            processes.run(
                ["manage.py", "collectstatic", "--no-input", "-v", "0"],
                self.layer_env,
                self.log("collectstatic"),
                timeout=600,
            )
            self.static_collected = True
        label = f"layer-dashboards-{number}"
        with DashboardLoad(self.layer_env, self.run_dir / "logs", label) as load:
            start, end, done_at, completed = self.drain_layer(label)
            polled = load.summary(start.at, done_at)
        figures = self.figures(
            "layer-dashboards", number, produced, queued, start, end, done_at, completed
        )
        figures.update(polled)
        return figures

    def drain_pair(self, number: int) -> None:
        """Bare's and the layer's N publishes, interleaved, then each side's drain."""
        self.fresh_state()
        bare, layer = self.produce_pair("bare", "layer", number)
        self.keep(number, self.bare_round(number, bare))
        self.keep(number, self.layer_round(number, layer))

    def atomic_pair(self, number: int) -> None:
        """Both sides' N publishes in a view's transaction; the layer's relayed drain."""
        self.fresh_state()
        bare_atomic, layer_atomic = self.produce_pair("bare-atomic", "layer-atomic", number)
        self.keep(number, self.atomic_enqueue_round(number, "bare-atomic", bare_atomic))
        self.keep(number, self.atomic_enqueue_round(number, "layer-atomic", layer_atomic))

    def run(self) -> None:
        for number in range(1, self.options.rounds + 1):
            self.drain_pair(number)
            if self.options.dashboards:
                self.keep(number, self.dashboards_round(number))
            self.atomic_pair(number)

    def fresh_state(self) -> None:
        """An empty Redis and job table: every pair of sides starts from the same state."""
        self.redis.flushall()
        self.layer_db("reset")

    def keep(self, number: int, figures: dict[str, Any]) -> None:
        """Keep one side's figures for the verdicts and print its line."""
        side = figures["side"]
        self.runs.append(figures)
        print(
            report.round_line(f"round {number}/{self.options.rounds} {side:12}: ", figures),
            flush=True,
        )
