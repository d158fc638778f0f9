"""Canvas: chain, group and chord relations are recorded so a family can be walked."""

from __future__ import annotations

from celery import chain, chord, group

from demo.tasks import add
from plaincelery.tasks import total
from tasks.models import Job, JobStatus
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess


def test_chain_records_parent_and_root(live_worker: WorkerProcess) -> None:
    result = chain(add.s(1, 2), add.s(10), add.s(100))()
    assert result.get(timeout=30) == 113
    last = wait_for_job(result.id)
    middle = wait_for_job(result.parent.id)
    first = wait_for_job(result.parent.parent.id)
    assert first.parent_id == ""
    assert middle.parent_id == first.task_id
    assert last.parent_id == middle.task_id
    assert {first.root_id, middle.root_id, last.root_id} == {first.task_id}
    assert last.args == [13, 100]
    assert Job.objects.family(first.task_id).count() == 3
    assert len({first.correlation_id, middle.correlation_id, last.correlation_id}) == 1


def test_group_records_the_group_id(live_worker: WorkerProcess) -> None:
    result = group(add.s(i, i) for i in range(4))()
    assert result.get(timeout=30) == [0, 2, 4, 6]
    jobs = [wait_for_job(child.id) for child in result.results]
    assert {job.group_id for job in jobs} == {result.id}
    assert all(job.status == JobStatus.SUCCESS for job in jobs)


def test_chord_records_header_group_and_body(live_worker: WorkerProcess) -> None:
    result = chord([add.s(1, 1), add.s(2, 2), add.s(3, 3)])(total.s())
    assert result.get(timeout=30) == 12
    body = wait_for_job(result.id)
    header = [wait_for_job(child.id) for child in result.parent.results]
    group_id = result.parent.id
    assert {job.group_id for job in header} == {group_id}
    assert body.status == JobStatus.SUCCESS
    assert body.args == [[2, 4, 6]]
    # Celery gives each header task its own root; the chord's group id ties them and
    # the body together, and the body's parent is one of the header tasks.
    assert body.group_id == group_id
    assert body.parent_id in {job.task_id for job in header}
    assert Job.objects.in_group(group_id).count() == 4
