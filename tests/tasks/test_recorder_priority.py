"""The recorder yields the CPU to its worker: a real worker's recorder runs niced."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


def recorder_pids(worker: WorkerProcess, timeout: float = 20.0) -> list[int]:
    """The `python -m tasks.runtime.recorder_and_relay` processes in the worker's process group."""
    assert worker.process is not None
    group = worker.process.pid  # the worker starts a session of its own
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                in_group = os.getpgid(int(entry.name)) == group
            except (OSError, ProcessLookupError):
                continue
            if in_group and b"tasks.runtime.recorder_and_relay" in command:
                found.append(int(entry.name))
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no recorder process in the worker's group; see {worker.log_path}")


def test_the_recorder_runs_at_a_lower_cpu_priority_than_its_worker(
    live_worker: WorkerProcess,
) -> None:
    assert live_worker.process is not None
    worker_nice = os.getpriority(os.PRIO_PROCESS, live_worker.process.pid)
    expected = min(19, worker_nice + settings.TASKS_RECORDER_NICE)
    assert settings.TASKS_RECORDER_NICE > 0
    for pid in recorder_pids(live_worker):
        assert os.getpriority(os.PRIO_PROCESS, pid) == expected
