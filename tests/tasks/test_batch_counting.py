"""Batch rows kept by the recording service, against the real database: each member
counted once in `total` and once in its final status, whatever the order and repeats
of its events."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks.models import Job, JobStatus
from tasks.observations import Batch, BatchKind
from tasks.record import translate
from tasks.record.events import CHORD_CALLBACK, JobEvent
from tasks.record.service import write, write_in_transaction

pytestmark = pytest.mark.django_db

GROUP = "g-1"


def _sent(task_id: str, index: int, name: str = "tasks.demo.add", **facts: object) -> JobEvent:
    return JobEvent(
        task_id,
        JobStatus.SENT,
        0,
        facts={"name": name, "queue": "default", "group_id": GROUP, "group_index": index, **facts},
    )


def _final(task_id: str, status: str, attempt: int = 1) -> JobEvent:
    return JobEvent(task_id, status, attempt, state={"finished_at": timezone.now()})


def _batch() -> Batch:
    return Batch.objects.get(group_id=GROUP)


def test_members_are_counted_once_in_total_and_once_in_their_final_status() -> None:
    write([_sent(f"m{i}", i) for i in range(5)], [])
    batch = _batch()
    assert (batch.kind, batch.name, batch.total, batch.done) == (
        BatchKind.GROUP,
        "tasks.demo.add",
        5,
        0,
    )
    assert Job.objects.get(task_id="m3").group_index == 3

    finals = [
        _final("m0", JobStatus.SUCCESS),
        _final("m1", JobStatus.SUCCESS),
        _final("m2", JobStatus.FAILURE),
        _final("m3", JobStatus.REVOKED),
    ]
    write(finals, [])
    # Redelivered from the stream, and late duplicates of the facts: nothing more.
    write(finals, [])
    write([_sent(f"m{i}", i) for i in range(5)], [])
    write([JobEvent("m4", JobStatus.RETRY, 1, state={"error": "E: again"})], [])

    batch = _batch()
    assert (batch.total, batch.succeeded, batch.failed, batch.cancelled) == (5, 2, 1, 1)
    assert batch.done == 4
    assert batch.last_finished_at is not None

    write([_final("m4", JobStatus.SUCCESS, attempt=2)], [])
    write([_final("m4", JobStatus.SUCCESS, attempt=2)], [])
    batch = _batch()
    assert (batch.total, batch.succeeded, batch.done) == (5, 3, 5)


def test_events_of_one_member_in_one_flush_and_out_of_order() -> None:
    now = timezone.now()
    # The pool child's STARTED+SUCCESS with the facts, and the publisher's SENT, together.
    started = JobEvent(
        "a",
        JobStatus.SUCCESS,
        1,
        facts={"name": "tasks.demo.add", "group_id": GROUP, "group_index": 0},
        state={"started_at": now, "finished_at": now},
    )
    write([_sent("a", 0), started], [])
    # A final event without facts before the member's facts (the worker's main process
    # reports a revoke before the publisher's SENT lands).
    write([_final("b", JobStatus.REVOKED, attempt=0)], [])
    assert _batch().total == 1
    write([_sent("b", 1)], [])
    batch = _batch()
    assert (batch.total, batch.succeeded, batch.cancelled) == (2, 1, 1)
    write([_sent("b", 1), _final("b", JobStatus.REVOKED, attempt=0)], [])
    assert (_batch().total, _batch().cancelled) == (2, 1)


def test_a_chord_header_makes_a_chord_batch_and_its_body_is_not_a_member() -> None:
    write(
        [_sent(f"h{i}", i, **{CHORD_CALLBACK: "body-1"}) for i in range(3)]
        + [_sent("h3", 3, name="tasks.demo.noop", **{CHORD_CALLBACK: "body-1"})],
        [],
    )
    batch = _batch()
    assert (batch.kind, batch.callback_id, batch.name, batch.total) == (
        BatchKind.CHORD,
        "body-1",
        "mixed",
        4,
    )
    # The body: same group id, no position.
    body = JobEvent(
        "body-1", JobStatus.SENT, 0, facts={"name": "plaincelery.total", "group_id": GROUP}
    )
    write([body, _final("body-1", JobStatus.SUCCESS)], [])
    batch = _batch()
    assert (batch.total, batch.succeeded) == (4, 0)


def test_a_flush_without_members_reads_and_writes_as_before() -> None:
    write([JobEvent("solo", JobStatus.SENT, 0, facts={"name": "x", "queue": "q"})], [])
    with CaptureQueriesContext(connection) as queries:
        write([JobEvent("solo2", JobStatus.SENT, 0, facts={"name": "x", "queue": "q"})], [])
    assert not any("batch" in q["sql"].lower() for q in queries.captured_queries)
    assert not Batch.objects.exists()


def test_a_flush_of_many_members_is_one_batch_statement() -> None:
    with CaptureQueriesContext(connection) as queries:
        write([_sent(f"n{i}", i) for i in range(200)], [])
    batch_writes = [q for q in queries.captured_queries if "tasklayer_batch" in q["sql"]]
    assert len(batch_writes) == 1
    assert _batch().total == 200


def test_published_message_of_a_chord_member_carries_position_and_callback() -> None:
    headers = {"id": "t1", "task": "tasks.demo.add", "group": "g9", "group_index": 7}
    chord = {"task": "plaincelery.total", "options": {"task_id": "cb-9"}, "args": []}
    event = translate.published(
        headers, ([1, 2], {}, {"chord": chord}), "default", None, timezone.now()
    )
    assert event.facts["group_id"] == "g9"
    assert event.facts["group_index"] == 7
    assert event.facts[CHORD_CALLBACK] == "cb-9"
    plain = translate.published(
        {"id": "t2", "task": "x"}, ([], {}, {"chord": None}), "default", None, timezone.now()
    )
    assert "group_index" not in plain.facts
    assert CHORD_CALLBACK not in plain.facts


def test_batch_created_at_is_its_first_members_time() -> None:
    early = timezone.now() - timedelta(minutes=5)
    first = JobEvent(
        "e0",
        JobStatus.SENT,
        0,
        facts={"name": "n", "group_id": GROUP, "group_index": 0},
        at=early,
    )
    write([_sent("e1", 1)], [])
    write([first], [])
    assert _batch().created_at == early


def test_members_written_with_the_callers_commit_join_there_once() -> None:
    # A group enqueued inside a transaction: its PENDING rows are written with the COMMIT
    # (no recorder read), then the relay's SENT and the worker's events find them members.
    pending = [
        JobEvent(f"t{i}", JobStatus.PENDING, 0, facts=_sent(f"t{i}", i).facts) for i in range(4)
    ]
    with transaction.atomic():
        write_in_transaction(pending)
    assert (_batch().total, _batch().done) == (4, 0)
    write([_sent(f"t{i}", i) for i in range(4)], [])
    write([_final(f"t{i}", JobStatus.SUCCESS) for i in range(4)], [])
    batch = _batch()
    assert (batch.total, batch.succeeded) == (4, 4)


@pytest.mark.django_db(transaction=True)
def test_two_recorders_writing_one_members_events_at_once_count_it_once() -> None:
    # One recorder beside each worker: a member's SENT in one flush, its RECEIVED in
    # another's, written at the same moment. Both read before they write.
    members, rounds = 30, 3

    def flush(round_: int, status: str, barrier: threading.Barrier) -> None:
        try:
            events = [
                JobEvent(f"c{round_}-{i}", status, 0, facts=_sent(f"c{round_}-{i}", i).facts)
                for i in range(members)
            ]
            barrier.wait()
            write(events, [])
        finally:
            connections.close_all()

    for round_ in range(rounds):
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=flush, args=(round_, status, barrier))
            for status in (JobStatus.SENT, JobStatus.RECEIVED)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert _batch().total == members * rounds
