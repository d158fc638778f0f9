"""`make soak`: the project's own chaos run. PASS when no job is lost.

For each database (SQLite; PostgreSQL when 127.0.0.1:5432 answers, in a database of the
soak's own, dropped afterwards) and each broker mode (a Redis that keeps nothing on disk,
`--save "" --appendonly no`, and one with its append-only file), N jobs go through two
real prefork workers (`-c 2`) and one beat, as deployed, while the faults of
`bench.soak_plan.schedule` happen: pool children and whole workers SIGKILLed (the
workers started again), every database connection cut, the broker SIGKILLed and started
again on the same port. Then the soak waits until every job is final (or it stalls, or a
deadline passes) and prints, per database x broker mode, the jobs, how many succeeded,
were lost, ran more than once, were dead-lettered and were recovered
(`bench.soak_report`). Exit status 1 when any cell lost a job.

Not the layer's defaults, on purpose: Redis's visibility timeout is lowered to
VISIBILITY_TIMEOUT_S (the layer's is 12 h), so that the messages a killed worker held
come back within the run; TASKS_HOLD_AFTER and TASKS_HOLD_LEAD are lowered below it as
`manage.py check` requires; the outbox's lease (TASKS_OUTBOX_LEASE, 60 s) is lowered to
OUTBOX_LEASE_S, so that the rows a killed worker's relay had claimed are published again
within the run too.

Logs (workers, beat, producer, faults, the wait) and each cell's facts are kept under
var/soak/<stamp>/.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import processes, soak_plan, soak_report
from bench.databases import LOCAL_SERVER, own_database, redacted
from bench.rounds import BENCH_SECRET_KEY, child_env
from bench.soak_plan import Fault, SoakOptions
from bench.soak_task import RUNS_KEY_ENV, SIDE_REDIS_URL_ENV
from devstack.redis_server import RedisServer

VAR_SOAK = processes.ROOT / "var" / "soak"
VISIBILITY_TIMEOUT_S = 20
OUTBOX_LEASE_S = 15
READY_TIMEOUT_S = 90.0
READY = re.compile(r"\bready\.?$", re.MULTILINE)  # celery's "<name> ready."


class Cell:
    """One database x broker mode: its broker, workers, beat, producer and faults."""

    def __init__(
        self,
        options: SoakOptions,
        database: str,
        database_url: str,
        broker_mode: str,
        side: RedisServer,
        run_dir: Path,
        number: int,
    ) -> None:
        self.options = options
        self.database = database
        self.database_url = database_url
        self.broker_mode = broker_mode
        self.side = side
        self.dir = run_dir / f"{database}-{broker_mode}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.number = number
        self.broker = RedisServer(
            data_dir=self.dir / "broker-data", persistent=broker_mode == "aof"
        )
        self.workers: list[subprocess.Popen[str] | None] = [None] * soak_plan.WORKERS
        self.generations = [0] * soak_plan.WORKERS
        self.rng = random.Random(options.seed + number)  # noqa: S311 (not a secret)
        self.fault_log = self.dir / "faults.log"

    # --- environment and processes --------------------------------------------------

    def env(self) -> dict[str, str]:
        return child_env(
            DJANGO_SETTINGS_MODULE="project.settings",
            SECRET_KEY=BENCH_SECRET_KEY,
            DEBUG="0",
            LOG_LEVEL="INFO",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.broker.url,
            CELERY_BROKER_URL=self.broker.url,
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT_S),
            CELERY_UNACKED_RESTORE_INTERVAL="2",
            CELERY_UNACKED_RESTORE_THROTTLE="2",
            TASKS_HOLD_AFTER="5",
            TASKS_HOLD_LEAD="1",
            TASKS_OUTBOX_LEASE=str(OUTBOX_LEASE_S),
            **{SIDE_REDIS_URL_ENV: self.side.url, RUNS_KEY_ENV: f"soak:runs:{self.number}"},
        )

    def note(self, text: str) -> None:
        line = f"{datetime.now(UTC).strftime('%H:%M:%S')} {text}"
        with self.fault_log.open("a") as log:
            log.write(line + "\n")
        print(f"  {line}", flush=True)

    def start_worker(self, index: int, wait: bool = True) -> None:
        """Start worker `index` again (a new name); with `wait`, until it is ready. A
        restart during the faults does not wait: the next fault keeps its time."""
        self.generations[index] += 1
        name = f"soak{index + 1}-{self.generations[index]}@localhost"
        log = self.dir / f"worker{index + 1}-{self.generations[index]}.log"
        self.workers[index] = processes.start(
            [
                *("-m", "celery", "-A", "project", "worker", "-P", "prefork"),
                *("-c", str(soak_plan.CONCURRENCY), "-n", name, "-l", "INFO"),
                *("--without-mingle", "--without-gossip", "-I", "bench.soak_task"),
            ],
            self.env(),
            log,
        )
        if wait:
            wait_for_line(log, READY, READY_TIMEOUT_S, self.workers[index])

    def start(self) -> None:
        self.broker.start()
        for index in range(soak_plan.WORKERS):
            self.start_worker(index)
        self.beat = processes.start(
            [
                *("-m", "celery", "-A", "project", "beat", "-l", "INFO"),
                *("--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"),
            ],
            self.env(),
            self.dir / "beat.log",
        )

    def stop(self) -> None:
        processes.stop_all()
        self.broker.stop()

    # --- the faults -------------------------------------------------------------------

    def apply(self, fault: Fault) -> None:
        if fault.kind == "pool-kill":
            self.kill_pool_child(fault.worker or 0)
        elif fault.kind == "worker-kill":
            self.kill_worker(fault.worker or 0)
        elif fault.kind == "worker-start":
            self.start_worker(fault.worker or 0, wait=False)
            self.note(f"worker {(fault.worker or 0) + 1} started again")
        elif fault.kind == "db-cut":
            self.cut_database()
        elif fault.kind == "broker-kill":
            self.kill_broker()

    def kill_pool_child(self, index: int) -> None:
        worker = self.workers[index]
        if worker is None or worker.poll() is not None:
            index = 1 - index  # that one is down (being restarted): the other
            worker = self.workers[index]
        children = pool_children(worker.pid) if worker is not None else []
        if not children:
            self.note(f"pool-kill: worker {index + 1} has no pool child to kill")
            return
        pid = self.rng.choice(children)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.note(f"pool-kill: SIGKILL pool child {pid} of worker {index + 1}")

    def kill_worker(self, index: int) -> None:
        worker = self.workers[index]
        if worker is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)  # main process, pool and recorder
        worker.wait()
        with contextlib.suppress(ValueError):
            processes._running.remove(worker)
        self.workers[index] = None
        self.note(f"worker-kill: SIGKILL worker {index + 1} (pid {worker.pid}) and its group")

    def cut_database(self) -> None:
        if self.database != "postgresql":
            self.note("db-cut: does not apply to SQLite (no server connection to cut)")
            return
        name = self.database_url.rsplit("/", 1)[1]
        try:
            import psycopg

            with psycopg.connect(
                f"postgresql://postgres@{LOCAL_SERVER}/postgres",
                autocommit=True,
                connect_timeout=5,
            ) as admin:
                cut = admin.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                    "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    [name],
                ).fetchone()
            self.note(f"db-cut: terminated {cut[0] if cut else 0} backend(s) of {name}")
        except Exception as exc:
            self.note(f"db-cut: failed: {type(exc).__name__}: {exc}")

    def kill_broker(self) -> None:
        process = self.broker.process
        assert process is not None
        process.kill()
        process.wait()
        self.broker.process = None
        self.note(
            f"broker-kill: SIGKILL redis-server ({self.broker_mode}) on port {self.broker.port}"
        )
        self.broker.start()
        self.note(
            "broker started again on the same port"
            + (" from its append-only file" if self.broker_mode == "aof" else ", empty")
        )

    # --- the run ----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        options = self.options
        since = datetime.now(UTC).isoformat()
        seconds = soak_plan.task_seconds(options.n, options.window_s)
        print(
            f"\n== {self.database} x broker {self.broker_mode}: N={options.n}, "
            f"task {seconds * 1000:.0f} ms, faults for {options.window_s:g} s; "
            f"load average {os.getloadavg()[0]:.2f}; "
            f"logs in {self.dir.relative_to(processes.ROOT)}",
            flush=True,
        )
        self.start()
        producer = processes.start(
            [
                "-m",
                "bench.soak_producer",
                "--n",
                str(options.n),
                "--seconds",
                str(soak_plan.produce_seconds(options.window_s)),
                "--task-seconds",
                str(seconds),
                "--ids",
                str(self.dir / "enqueued.txt"),
            ],
            self.env(),
            self.dir / "producer.log",
            stdout=subprocess.PIPE,
        )
        started = time.monotonic()
        for fault in soak_plan.schedule(options.window_s, options.seed):
            pause = started + fault.at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self.apply(fault)
        pause = started + options.window_s - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        out, _ = producer.communicate(timeout=300)
        processes.stop(producer)
        enqueued = parse_enqueued(out)
        self.note(f"producer: {out.strip()}")
        for index, worker in enumerate(self.workers):  # a restart that failed, say
            if worker is None or worker.poll() is not None:
                self.start_worker(index)
        facts_path = self.dir / "facts.json"
        processes.run(
            [
                "-m",
                "bench.soak_db",
                "wait",
                "--expected",
                str(enqueued),
                "--deadline",
                str(options.drain_s),
                "--stall",
                str(options.stall_s),
                "--side-redis",
                self.side.url,
                "--runs-key",
                f"soak:runs:{self.number}",
                "--since",
                since,
                "--ids",
                str(self.dir / "enqueued.txt"),
                "--out",
                str(facts_path),
            ],
            self.env(),
            self.dir / "wait.log",
            timeout=options.drain_s + 120,
        )
        found = json.loads(facts_path.read_text())
        jobs = [soak_report.JobFacts(*row) for row in found["jobs"]]
        counts = soak_report.tally(jobs)
        self.note(
            f"wait ended: {found['wait_ended']}; broker losses recorded by the layer: "
            f"{json.dumps(found['broker_losses'])}"
        )
        kinds = Counter(
            f"{job['status']}/{'tx' if job['in_transaction'] else 'plain'}/ran {job['runs']}"
            f"/result {job['stored_result'] or 'none'}"
            for job in found["not_final"]
        )
        if kinds:
            self.note(f"not final (first 100): {dict(kinds.most_common())}")
        return {
            "database": self.database,
            "broker": self.broker_mode,
            **counts,
            "wait_ended": found["wait_ended"],
            "enqueued": enqueued,
            "runs_without_row": found["runs_without_row"],
            "rows_not_listed": found["rows_not_listed"],
            "broker_losses": found["broker_losses"],
            "load_average_at_end": round(os.getloadavg()[0], 2),
        }


def parse_enqueued(out: str) -> int:
    match = re.search(r"enqueued=(\d+)", out)
    if not match:
        raise RuntimeError(f"the producer did not report its count: {out!r}")
    return int(match.group(1))


def pool_children(leader: int) -> list[int]:
    """The pool processes of a prefork worker: its children, minus the recorder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == leader and b"recorder_and_relay" not in cmdline:
            found.append(int(entry.name))
    return found


def wait_for_line(
    log: Path, pattern: re.Pattern[str], timeout: float, process: subprocess.Popen[Any] | None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before it was ready; see {log}")
        if log.exists() and pattern.search(log.read_text(errors="replace")):
            return
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout:g} s; see {log}")


def migrate(env: dict[str, str], log: Path) -> None:
    processes.run(["manage.py", "migrate", "--no-input", "-v", "0"], env, log, timeout=600)


def reset(env: dict[str, str], log: Path) -> None:
    processes.run(["-m", "bench.layer_db", "reset"], env, log, timeout=120)


def run_database(
    options: SoakOptions,
    database: str,
    url: str,
    side: RedisServer,
    run_dir: Path,
    first_number: int,
) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    print(f"\nsoak: database {database} ({redacted(url)})", flush=True)
    for offset, broker_mode in enumerate(options.brokers):
        cell = Cell(options, database, url, broker_mode, side, run_dir, first_number + offset)
        try:
            env = cell.env()
            if offset == 0:
                migrate(env, cell.dir / "migrate.log")
            else:
                reset(env, cell.dir / "reset.log")
            result = cell.run()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            print(f"soak: {database} x {broker_mode} could not run: {exc}", flush=True)
            result = {"database": database, "broker": broker_mode, "error": str(exc)}
        finally:
            cell.stop()
        cells.append(result)
        if not result.get("error"):
            print(soak_report.format_table([result]), flush=True)
    return cells


def soak(options: SoakOptions, stamp: str, run_dir: Path) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    with RedisServer(data_dir=run_dir / "side-redis") as side:
        number = 0
        for database in options.databases:
            if database == "sqlite":
                path = run_dir / "soak.sqlite3"
                try:
                    cells += run_database(
                        options, database, f"sqlite:///{path}", side, run_dir, number
                    )
                finally:
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{path}{suffix}").unlink(missing_ok=True)
            else:
                with own_database(f"{stamp}soak", optional=True) as url:
                    if url is None:
                        continue
                    cells += run_database(options, database, url, side, run_dir, number)
            number += len(options.brokers)
    return cells


def main(argv: list[str] | None = None) -> int:
    options = soak_plan.parse_args(argv)
    processes.stop_on_signals()
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = VAR_SOAK / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(
        f"soak: N={options.n} per cell, faults for {options.window_s:g} s, then up to "
        f"{options.drain_s:g} s for every job to end; databases {','.join(options.databases)}; "
        f"brokers {','.join(options.brokers)}; seed {options.seed}; load average "
        f"{load[0]:.2f} on {os.cpu_count()} cores; logs in {run_dir.relative_to(processes.ROOT)}",
        flush=True,
    )
    print("schedule of faults per cell (seconds from the producer's start):", flush=True)
    for fault in soak_plan.schedule(options.window_s, options.seed):
        print(f"  {fault.describe()}", flush=True)
    try:
        cells = soak(options, stamp, run_dir)
    except KeyboardInterrupt as exc:
        processes.stop_all()
        return processes.exit_status(exc)
    finally:
        processes.stop_all()
    elapsed = (datetime.now(UTC) - started).total_seconds()
    (run_dir / "results.json").write_text(
        json.dumps(
            {
                "started_at": started.isoformat(),
                "elapsed_s": elapsed,
                "options": options.__dict__,
                "cells": cells,
            },
            indent=1,
            default=str,
        )
    )
    print(f"\nsoak results ({elapsed:.0f} s; load average now {os.getloadavg()[0]:.2f}):")
    print(soak_report.format_table(cells))
    status = soak_report.exit_status(cells)
    print(
        f"\n{'PASS' if status == 0 else 'FAIL'}: {'no' if status == 0 else 'some'} job lost"
        f"{'' if status == 0 else ' (or a cell could not run)'}; "
        f"figures in {(run_dir / 'results.json').relative_to(processes.ROOT)}"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
