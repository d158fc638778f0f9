"""How many jobs a worker finished and how many failed, counted without the database.

The heartbeat (tasks.runtime.heartbeat) writes these counts to the worker's WorkerBeat
row, from the process beside the worker (tasks.runtime.recorder_and_relay), the only
one that writes it. The counting happens where each job ends: in the pool child that ran
it (prefork), or in the worker's main process (solo and threads pools, and a job whose
child died: its WorkerLostError failure is reported by the main process).

Why shared memory and not the job rows or the recorder: counting a worker's finished
rows needs an index on `Job.worker` that nothing else uses (every insert would pay
for it), and the recorder beside a worker records events of every worker on the stream,
redelivered ones twice. Here each finish is one store into a page of memory shared
by the main process and its forked children (an anonymous mmap made before the pool
forks): no system call, no lock. A child writes only its own slot (billiard numbers
pool processes 0..n-1 and a replacement takes its predecessor's number, and its count
from the slot), so no two processes ever write one slot; the main process has a slot
of its own, under a thread lock for the threads pool. The main process adds the slots up
and hands the totals to the process beside it (RecorderProcess, a line on its stdin).

`processed` counts jobs that ended (succeeded or failed); an attempt that retries and
a job revoked while running are not counted, like Celery's own "succeeded" and
"failed" events.
"""

from __future__ import annotations

import mmap
import struct
import threading
from dataclasses import dataclass
from typing import Any

from celery import signals

#: Pool processes with a slot of their own; a pool grown beyond it shares slots, and its
#: counts may then be a few short (two children storing into one slot at once).
CHILD_SLOTS = 1024
_SLOT = struct.Struct("=QQ")  # processed, failed


@dataclass(frozen=True, slots=True)
class Counts:
    processed: int = 0
    failed: int = 0


class _Counter:
    """The shared slots, the slot this process writes, and its running totals."""

    def __init__(self) -> None:
        self.memory = mmap.mmap(-1, _SLOT.size * (CHILD_SLOTS + 1))
        self.slot = 0  # the main process's; a pool child moves to its own at start
        self.lock: threading.Lock | None = threading.Lock()
        self.processed = 0
        self.failed = 0

    def enter_child(self, index: int) -> None:
        """A pool child: its own slot, continuing the count its predecessor left there."""
        self.slot = 1 + index % CHILD_SLOTS
        self.lock = None  # one thread runs jobs in a pool child
        self.processed, self.failed = _SLOT.unpack_from(self.memory, self._offset())

    def finished(self, failed: bool) -> None:
        if self.lock is None:
            self._add(failed)
            return
        with self.lock:
            self._add(failed)

    def _add(self, failed: bool) -> None:
        self.processed += 1
        self.failed += int(failed)
        _SLOT.pack_into(self.memory, self._offset(), self.processed, self.failed)

    def _offset(self) -> int:
        return self.slot * _SLOT.size

    def totals(self) -> Counts:
        processed = failed = 0
        for slot_processed, slot_failed in _SLOT.iter_unpack(self.memory):
            processed += slot_processed
            failed += slot_failed
        return Counts(processed, failed)


_counter: _Counter | None = None


def install() -> None:
    """Start counting: in the worker's main process, before the pool forks (a bootstep's
    __init__). Idempotent."""
    global _counter
    if _counter is not None:
        return
    _counter = _Counter()
    signals.worker_process_init.connect(_enter_child, weak=False, dispatch_uid=f"{__name__}.child")
    signals.task_success.connect(_succeeded, weak=False, dispatch_uid=f"{__name__}.success")
    signals.task_failure.connect(_failed, weak=False, dispatch_uid=f"{__name__}.failure")


def totals() -> Counts:
    """The worker's counts so far (zero when not counting)."""
    return _counter.totals() if _counter is not None else Counts()


def _enter_child(**_: Any) -> None:
    from billiard.process import current_process

    index = getattr(current_process(), "index", None)
    if _counter is not None and isinstance(index, int):
        _counter.enter_child(index)


def _succeeded(**_: Any) -> None:
    if _counter is not None:
        _counter.finished(failed=False)


def _failed(**_: Any) -> None:
    if _counter is not None:
        _counter.finished(failed=True)
