"""The worker's finish counts and the report line its main process sends beside it."""

from __future__ import annotations

import os

import pytest

from tasks.runtime.heartbeat import Report
from tasks.runtime.worker_counts import CHILD_SLOTS, Counts, _Counter


def test_a_report_survives_its_line_and_garbage_is_ignored() -> None:
    report = Report(processed=12, failed=3, concurrency=4)
    assert Report.parse(report.line()) == report
    assert Report.parse(b"not json") is None
    assert Report.parse(b'["a", 1]') is None
    assert Report.parse(b"") is None


def test_slots_add_up_and_a_replacement_child_continues_its_predecessors_count() -> None:
    counter = _Counter()
    counter.finished(failed=False)  # the main process (a worker-lost failure, solo, threads)
    counter.finished(failed=True)
    assert counter.totals() == Counts(2, 1)

    pid = os.fork()
    if pid == 0:  # a pool child numbered 3, forked like billiard's
        counter.enter_child(3)
        for failed in (False, False, True):
            counter.finished(failed)
        os._exit(0)
    os.waitpid(pid, 0)
    assert counter.totals() == Counts(5, 2)

    pid = os.fork()
    if pid == 0:  # its replacement takes number 3 again
        counter.enter_child(3)
        counter.finished(failed=False)
        os._exit(0)
    os.waitpid(pid, 0)
    assert counter.totals() == Counts(6, 2)


@pytest.mark.parametrize("index", [0, CHILD_SLOTS - 1, CHILD_SLOTS, 5 * CHILD_SLOTS + 2])
def test_every_child_number_has_a_slot_other_than_the_main_process(index: int) -> None:
    counter = _Counter()
    counter.enter_child(index)
    assert 1 <= counter.slot <= CHILD_SLOTS
