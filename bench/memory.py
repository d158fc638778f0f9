"""Worker memory: a layer worker's resident memory early in a long drain and at its end.

A producer publishes `jobs` jobs while one layer worker runs them; the resident memory
of the worker's process group (main, pool children, recorder) is read when the SUCCESS
count crosses 5,000 and at the end. The early mark leaves start-up out; a leak per job
keeps growing after it.
"""

from __future__ import annotations

import subprocess
from typing import Any

from bench import processes
from bench.rounds import LAYER_QUEUE, Bench, worker_args


def memory_check(bench: Bench, jobs: int) -> dict[str, Any]:
    """A layer worker's RSS (main, pool, recorder) after 5,000 jobs and after `jobs`.

    The producer runs alongside the worker, as traffic does; RSS is sampled when the
    SUCCESS count crosses each mark.
    """
    bench.redis.flushall()
    bench.layer_db("reset")
    early_mark = min(5000, jobs // 2)
    out = bench.run_dir / "producer-memory.json"
    producer = processes.start(
        ["-m", "bench.producer", "layer", "--n", str(jobs), "--out", str(out)],
        bench.layer_env,
        bench.log("producer-memory"),
    )
    worker = processes.start(
        worker_args("project", LAYER_QUEUE), bench.layer_env, bench.log("worker-memory")
    )
    watcher = processes.start(
        [*("-m", "bench.layer_db", "watch"), *("--n", str(jobs), "--timeout", "3600")],
        bench.layer_env,
        bench.log("watcher-memory"),
        stdout=subprocess.PIPE,
    )
    samples: dict[str, int] = {}
    try:
        lines = processes.line_reader(watcher)
        while True:
            line = Bench.next_line(lines, timeout=600, what="the memory watcher")
            fields = dict(part.split("=") for part in line.split() if "=" in part)
            success = int(fields.get("success", 0))
            if "early" not in samples and success >= early_mark:
                samples["early"] = processes.group_rss_bytes(worker.pid)
                samples["early_main"] = processes.group_rss_bytes(worker.pid, main_only=True)
                samples["early_jobs"] = success
            if line.startswith("done "):
                samples["late"] = processes.group_rss_bytes(worker.pid)
                samples["late_main"] = processes.group_rss_bytes(worker.pid, main_only=True)
                samples["late_jobs"] = success
                break
            if line.startswith("timeout"):
                raise TimeoutError(f"memory check did not finish: {line}")
            bench.check_alive(worker, "memory", line, False)
    finally:
        processes.stop(watcher)
        processes.stop(worker)
        processes.stop(producer)
    return {
        "rss_early_mib": samples["early"] / 2**20,
        "rss_late_mib": samples["late"] / 2**20,
        "jobs_early": samples["early_jobs"],
        "jobs_late": samples["late_jobs"],
        "growth": samples["late"] / samples["early"] - 1,
        "main_rss_early_mib": samples["early_main"] / 2**20,
        "main_rss_late_mib": samples["late_main"] / 2**20,
    }
