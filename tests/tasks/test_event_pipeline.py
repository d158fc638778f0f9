"""The path from a worker's events to the database: stream, recorder, batched writes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone

from devstack.redis_server import RedisServer
from tasks.models import Job, JobStatus
from tasks.record import recorder as recorder_module
from tasks.record import sinks
from tasks.record.events import JobEvent, ResultEvent
from tasks.record.recorder import Recorder
from tasks.record.service import merge_job_events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stream_name() -> str:
    """A stream of the test's own: the session worker's recorder reads the real one."""
    return f"test-events-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def stream(redis_server: RedisServer, stream_name: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.delete(stream_name)
    client.close()


def a_life(task_id: str) -> list[JobEvent]:
    start = timezone.now()
    return [
        JobEvent(task_id, JobStatus.RECEIVED, 1, facts={"name": "demo.x", "args": [1]}, at=start),
        JobEvent(task_id, JobStatus.STARTED, 1, state={"started_at": start, "worker": "w@h"}),
        JobEvent(
            task_id,
            JobStatus.SUCCESS,
            1,
            state={"finished_at": start + timedelta(seconds=1), "result": {"ok": True}},
        ),
    ]


def test_encoding_round_trip_keeps_times_and_json() -> None:
    events = a_life("t-1")
    result = ResultEvent("t-1", {"status": "SUCCESS", "date_done": timezone.now()})
    jobs, results = sinks.decode(sinks.encode(events, [result]))
    assert jobs == events
    assert results == [result]


def test_folding_a_batch_keeps_every_state_field_of_the_winning_path() -> None:
    (merged,) = merge_job_events(a_life("t-2"))
    assert merged.status == JobStatus.SUCCESS
    assert set(merged.state) == {"started_at", "worker", "finished_at", "result"}
    assert merged.facts == {"name": "demo.x", "args": [1]}


def test_folding_ignores_a_late_lower_event() -> None:
    life = a_life("t-3")
    (merged,) = merge_job_events([life[0], life[2], life[1]])
    assert merged.status == JobStatus.SUCCESS
    assert "started_at" not in merged.state


def test_stream_events_reach_the_database_through_the_recorder(
    stream: redis.Redis, redis_server: RedisServer, stream_name: str
) -> None:
    sink = sinks.StreamSink(redis_server.url, autoflush=False, stream=stream_name)
    for event in a_life("t-4"):
        sink.emit_job(event)
    assert not Job.objects.filter(task_id="t-4").exists()  # buffered until the task ends
    sink.flush()
    assert stream.xlen(stream_name) == 1  # one round trip for the whole task
    recorder = Recorder(redis_server.url, consumer="test", streams=[stream_name])
    recorder.ensure_group()
    assert recorder.step(block=False) == 1
    job = Job.objects.get(task_id="t-4")
    assert (job.status, job.name, job.args, job.result) == (
        JobStatus.SUCCESS,
        "demo.x",
        [1],
        {"ok": True},
    )
    assert job.updated_at is not None
    assert stream.xlen(stream_name) == 0  # acknowledged and deleted after the commit
    sink.close()


def test_workers_events_are_written_beside_a_backlog_of_enqueues_not_after_it(
    stream: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    stream_name: str,
) -> None:
    """A burst of enqueues fills the publishers' stream; a job that finished meanwhile
    is written in the recorder's next batch, and its late SENT leaves it SUCCESS."""
    published_stream = f"{stream_name}-published"
    monkeypatch.setattr(recorder_module, "BATCH", 4)
    publisher = sinks.StreamSink(redis_server.url, autoflush=False, stream=published_stream)
    worker = sinks.StreamSink(redis_server.url, autoflush=False, stream=stream_name)
    backlog = [f"burst-{uuid.uuid4().hex[:6]}-{i}" for i in range(10)]
    finished = f"done-{uuid.uuid4().hex[:6]}"
    try:
        for task_id in backlog:  # one entry each: every publish flushed on its own
            publisher.emit_job(JobEvent(task_id, JobStatus.SENT, 0, facts={"name": "demo.x"}))
            publisher.flush()
        for event in a_life(finished):
            worker.emit_job(event)
        worker.flush()
        publisher.emit_job(JobEvent(finished, JobStatus.SENT, 0, facts={"name": "demo.x"}))
        publisher.flush()

        recorder = Recorder(
            redis_server.url, consumer="test", streams=[stream_name, published_stream]
        )
        recorder.ensure_group()
        assert recorder.step(block=False) == 3  # BATCH // 2 from each stream, one had 1
        assert Job.objects.get(task_id=finished).status == JobStatus.SUCCESS
        assert Job.objects.filter(task_id__in=backlog).count() == 2

        while recorder.step(block=False):
            pass
        assert Job.objects.filter(task_id__in=backlog, status=JobStatus.SENT).count() == 10
        job = Job.objects.get(task_id=finished)  # its SENT came last: SUCCESS stays
        assert (job.status, job.result) == (JobStatus.SUCCESS, {"ok": True})
        assert stream.xlen(stream_name) == stream.xlen(published_stream) == 0
    finally:
        publisher.close()
        worker.close()
        stream.delete(published_stream)


def test_a_backlog_of_big_entries_is_written_in_batches_bounded_in_bytes(
    stream: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    stream_name: str,
) -> None:
    """A publisher's entry holds up to MAX_BUFFER events: a batch of BATCH such entries
    would hold hundreds of thousands. The recorder stops reading once its batch passes
    BATCH_BYTES, and the rest follows in the next batches."""
    published_stream = f"{stream_name}-published"
    publisher = sinks.StreamSink(redis_server.url, autoflush=False, stream=published_stream)
    prefix = f"bulk-{uuid.uuid4().hex[:6]}"
    try:
        for entry in range(30):  # 30 entries of 50 SENT events each
            for i in range(50):
                publisher.emit_job(
                    JobEvent(f"{prefix}-{entry}-{i}", JobStatus.SENT, 0, facts={"name": "x"})
                )
            publisher.flush()
        entry_bytes = len(stream.xrange(published_stream, count=1)[0][1][b"e"])
        monkeypatch.setattr(recorder_module, "BATCH_BYTES", 4 * entry_bytes)
        recorder = Recorder(
            redis_server.url, consumer="test", streams=[stream_name, published_stream]
        )
        recorder.ensure_group()

        sizes = []
        while written := recorder.step(block=True):
            sizes.append(written)
        # The first read takes FIRST_CHUNK entries of each stream, whatever their size;
        # beyond it, nothing more once the budget is spent.
        assert max(sizes) == recorder_module.FIRST_CHUNK
        assert sum(sizes) == 30
        assert Job.objects.filter(task_id__startswith=prefix).count() == 1500
        assert stream.xlen(published_stream) == 0
    finally:
        publisher.close()
        stream.delete(published_stream)


def test_entries_of_a_recorder_that_died_are_claimed_by_another(
    stream: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    stream_name: str,
) -> None:
    task_id = f"t-{uuid.uuid4().hex[:6]}"
    sink = sinks.StreamSink(redis_server.url, autoflush=False, stream=stream_name)
    for event in a_life(task_id):
        sink.emit_job(event)
    sink.flush()
    dead = Recorder(redis_server.url, consumer="dead", streams=[stream_name])
    dead.ensure_group()
    assert dead._read(block=False)  # read, never written nor acknowledged: then it "died"
    survivor = Recorder(redis_server.url, consumer="survivor", streams=[stream_name])
    assert survivor.step(block=False) == 0  # nothing new to read
    monkeypatch.setattr(recorder_module, "CLAIM_IDLE_MS", 0)
    survivor._last_claim = 0.0
    assert survivor.step(block=False) == 1
    assert Job.objects.get(task_id=task_id).status == JobStatus.SUCCESS
    sink.close()


def test_a_malformed_entry_is_dropped_and_the_rest_is_written(
    stream: redis.Redis, redis_server: RedisServer, stream_name: str
) -> None:
    stream.xadd(stream_name, {"e": b"{not json"})
    sink = sinks.StreamSink(redis_server.url, autoflush=False, stream=stream_name)
    for event in a_life("t-5"):
        sink.emit_job(event)
    sink.flush()
    recorder = Recorder(redis_server.url, consumer="test", streams=[stream_name])
    recorder.ensure_group()
    assert recorder.step(block=False) == 2
    assert Job.objects.get(task_id="t-5").status == JobStatus.SUCCESS
    assert stream.xlen(stream_name) == 0
    sink.close()


def test_buffered_database_sink_writes_on_flush() -> None:
    sink = sinks.BufferedDatabaseSink(interval=3600)
    for event in a_life("t-6"):
        sink.emit_job(event)
    assert not Job.objects.filter(task_id="t-6").exists()
    sink.flush()
    assert Job.objects.get(task_id="t-6").status == JobStatus.SUCCESS
    sink.close()


def test_a_sink_keeps_one_event_per_attempt_so_the_history_survives_folding() -> None:
    from tasks.record.service import attempt_rows

    start = timezone.now()
    later = start + timedelta(seconds=2)
    events = [
        JobEvent("t-9", JobStatus.STARTED, 1, state={"started_at": start, "worker": "w@h"}),
        JobEvent("t-9", JobStatus.RETRY, 1, state={"error": "Boom", "eta": later}),
        JobEvent("t-9", JobStatus.STARTED, 2, state={"started_at": later, "worker": "w@h"}),
        JobEvent("t-9", JobStatus.SUCCESS, 2, state={"finished_at": later, "result": 1}),
    ]

    folded = merge_job_events(events, per_attempt=True)

    assert [(e.attempt, e.status) for e in folded] == [(1, "RETRY"), (2, "SUCCESS")]
    rows = attempt_rows(folded)
    assert [(r["number"], r["status"], r.get("error")) for r in rows] == [
        (1, "RETRY", "Boom"),
        (2, "SUCCESS", None),
    ]
    assert rows[0]["next_attempt_at"] == later
    # Folded per job (as one upsert needs), the first attempt would be gone.
    assert [e.attempt for e in merge_job_events(events)] == [2]


def test_received_is_reported_only_for_jobs_still_waiting_on_the_second_look() -> None:
    from tasks.record.waiting_jobs import WaitingJobs

    class Request:  # hashable, as Celery's are (the worker keeps them in WeakSets)
        def __init__(self, task_id: str) -> None:
            self.id = task_id

    quick, held = Request("quick"), Request("held")
    jobs = WaitingJobs()
    requests = {"quick": quick, "held": held}

    assert jobs.look(requests, active=set()) == []  # first sight: maybe about to start
    assert jobs.look(requests, active={quick}) == [held]  # quick started: never RECEIVED
    assert jobs.look(requests, active={quick}) == []  # held is recorded once
    del requests["held"]
    requests["held"] = held  # a redelivery of the same id later is a new wait
    assert jobs.look({}, active=set()) == []
    assert jobs.look(requests, active={quick}) == []
    assert jobs.look(requests, active={quick}) == [held]


def test_a_first_try_success_needs_no_attempt_row_unless_it_was_seen_running() -> None:
    from tasks.record.service import attempt_rows

    start = timezone.now()
    quick = JobEvent("t-q", JobStatus.SUCCESS, 1, state={"started_at": start, "finished_at": start})
    assert attempt_rows([quick]) == []
    # A long task's STARTED was written on its own; its end must close that row.
    slow_end = JobEvent("t-s", JobStatus.SUCCESS, 1, state={"finished_at": start})
    assert [(r["number"], r["status"]) for r in attempt_rows([slow_end])] == [(1, "SUCCESS")]


def test_stream_writer_lands_every_entry_and_resends_after_a_broken_connection(
    redis_server: RedisServer,
) -> None:
    from tasks.record.stream_writer import StreamWriter

    client = redis.Redis.from_url(redis_server.url)
    stream = f"test:writer:{uuid.uuid4().hex}"
    writer = StreamWriter(client, stream)
    try:
        for n in range(50):
            writer.send(f"entry {n}")
        # The connection breaks with a reply unread: that entry is sent again.
        writer.send("before the break")
        assert writer._connection is not None
        writer._connection.disconnect()
        writer.send("after the break")
        writer.close()
        entries = [fields[b"e"].decode() for _, fields in client.xrange(stream)]
    finally:
        client.delete(stream)
        client.close()
    assert entries[:50] == [f"entry {n}" for n in range(50)]
    assert "before the break" in entries  # once or twice: delivery is at least once
    assert entries[-1] == "after the break"


def test_a_value_the_database_refuses_does_not_block_the_batch(
    stream: redis.Redis, redis_server: RedisServer, stream_name: str
) -> None:
    """NaN is not JSON and PostgreSQL stores no NUL: the batch is written apart, the odd
    values replaced, and every job of it recorded (no endless retry)."""
    sink = sinks.StreamSink(redis_server.url, autoflush=False, stream=stream_name)
    for event in a_life("t-fine"):
        sink.emit_job(event)
    odd = {"t-nan": float("nan"), "t-nul": "a\x00b", "t-inf": [1.0, float("inf")]}
    for task_id, result in odd.items():
        sink.emit_job(
            JobEvent(
                task_id, JobStatus.SUCCESS, 1, facts={"name": "demo.x"}, state={"result": result}
            )
        )
        sink.emit_result(ResultEvent(task_id, {"status": "SUCCESS", "result": repr(result)}))
    sink.flush()
    recorder = Recorder(redis_server.url, consumer="test", streams=[stream_name])
    recorder.ensure_group()
    assert recorder.step(block=False) == 1
    results = dict(
        Job.objects.filter(task_id__in=[*odd, "t-fine"]).values_list("task_id", "result")
    )
    assert results == {
        "t-fine": {"ok": True},
        "t-nan": "nan",
        # SQLite stores a NUL as it is; PostgreSQL cannot.
        "t-nul": "a\x00b" if connection.vendor == "sqlite" else "a\ufffdb",
        "t-inf": [1.0, "inf"],
    }
    assert set(Job.objects.filter(task_id__in=odd).values_list("status", flat=True)) == {
        JobStatus.SUCCESS
    }
    assert stream.xlen(stream_name) == 0
    sink.close()


def test_the_database_sink_of_other_brokers_also_stores_a_refused_value_replaced() -> None:
    sink = sinks.BufferedDatabaseSink(interval=3600)
    for event in a_life("t-ok"):
        sink.emit_job(event)
    nan = JobEvent(
        "t-nan2", JobStatus.SUCCESS, 1, facts={"name": "d"}, state={"result": [float("nan")]}
    )
    sink.emit_job(nan)
    sink.flush()
    assert dict(Job.objects.values_list("task_id", "result")) == {
        "t-ok": {"ok": True},
        "t-nan2": ["nan"],
    }
    sink.close()
