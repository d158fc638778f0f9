"""`unique_key`: one unfinished job per key; the second `.delay()` gets the first handle."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from celery import Celery
from django.db import connection, connections, transaction

from demo.models import DemoCounter
from tasks import exceptions
from tasks.exceptions import InvalidUniqueKey
from tasks.models import Job, JobStatus, OutboxMessage
from tasks.publish import outbox
from tests.faults import unique_by_callable, unique_count, unique_short_ttl
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


def unconsumed_queue() -> str:
    return f"unique-{uuid.uuid4().hex[:8]}"


def jobs_named(name: str) -> int:
    return Job.objects.filter(name=name).count()


def test_second_delay_returns_the_first_job_and_records_nothing_until_it_finished(
    live_worker: WorkerProcess,
) -> None:
    key = uuid.uuid4().hex[:8]
    first = unique_count.delay(key, 1.5)
    second = unique_count.delay(key, 1.5, note="ignored: the first job holds the key")
    assert second.id == first.id
    assert jobs_named(unique_count.name) == 1

    job = wait_for_job(first.id, timeout=60)
    assert job.status == JobStatus.SUCCESS
    assert job.result == 1

    third = unique_count.delay(key)  # the key was released by SUCCESS
    assert third.id != first.id
    assert wait_for_job(third.id, timeout=60).status == JobStatus.SUCCESS
    assert DemoCounter.objects.get(key=f"unique:{key}").count == 2
    assert jobs_named(unique_count.name) == 2


def test_keys_are_per_argument_value() -> None:
    queue = unconsumed_queue()
    a = unique_count.apply_async(("a",), queue=queue)
    b = unique_count.apply_async(("b",), queue=queue)
    a_again = unique_count.apply_async((), {"key": "a", "seconds": 0.0}, queue=queue)
    assert a.id != b.id
    assert a_again.id == a.id  # the same value by keyword and with defaults applied
    assert jobs_named(unique_count.name) == 2


def test_inside_a_transaction_the_second_call_sees_the_first_and_rollback_frees_the_key() -> None:
    queue = unconsumed_queue()
    with transaction.atomic():
        first = unique_count.apply_async(("tx",), queue=queue)
        assert unique_count.apply_async(("tx",), queue=queue).id == first.id
    assert Job.objects.filter(task_id=first.id).exists()

    class Rollback(Exception):
        pass

    doomed_ids: list[str] = []

    def enqueue_then_fail() -> None:
        with transaction.atomic():
            doomed_ids.append(unique_count.apply_async(("rolled back",), queue=queue).id)
            raise Rollback

    with pytest.raises(Rollback):
        enqueue_then_fail()
    doomed_id = doomed_ids[0]
    again = unique_count.apply_async(("rolled back",), queue=queue)
    assert again.id != doomed_id
    assert not Job.objects.filter(task_id=doomed_id).exists()
    outbox.flush_deletions()  # published rows are deleted in batches
    assert not OutboxMessage.objects.filter(task_id=doomed_id).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks")
def test_concurrent_transactions_do_not_both_miss_each_other() -> None:
    queue = unconsumed_queue()
    ids: dict[str, str] = {}
    first_enqueued = threading.Event()

    def first() -> None:
        try:
            with transaction.atomic():
                ids["first"] = unique_count.apply_async(("race",), queue=queue).id
                first_enqueued.set()
                time.sleep(1.0)  # the second caller must wait for this commit
        finally:
            connections.close_all()

    def second() -> None:
        try:
            first_enqueued.wait(10)
            with transaction.atomic():
                ids["second"] = unique_count.apply_async(("race",), queue=queue).id
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert ids["second"] == ids["first"]
    assert jobs_named(unique_count.name) == 1


def test_key_lapses_after_unique_ttl_even_if_the_job_never_ran() -> None:
    queue = unconsumed_queue()
    first = unique_short_ttl.apply_async(("ttl",), queue=queue)
    assert unique_short_ttl.apply_async(("ttl",), queue=queue).id == first.id
    time.sleep(1.2)
    assert unique_short_ttl.apply_async(("ttl",), queue=queue).id != first.id


def test_a_callable_unique_key_decides_the_key() -> None:
    queue = unconsumed_queue()
    first = unique_by_callable.apply_async((7,), {"page": 1}, queue=queue)
    assert unique_by_callable.apply_async((7,), {"page": 2}, queue=queue).id == first.id
    assert unique_by_callable.apply_async((8,), queue=queue).id != first.id


def test_unique_key_naming_an_unknown_argument_is_refused_with_a_clear_error(
    celery_app: Celery,
) -> None:
    def export(account_id: int) -> int:
        return account_id

    refused: tuple[type[Exception], ...] = (InvalidUniqueKey,)
    invalid_option = getattr(exceptions, "InvalidTaskOption", None)
    if invalid_option is not None:  # decoration-time validation may catch it first
        refused = (InvalidUniqueKey, invalid_option)

    def declare_and_call() -> None:
        task = celery_app.task(
            name=f"tests.unique.{uuid.uuid4().hex[:6]}", unique_key=("accont_id",)
        )(export)
        task.apply_async((1,), queue=unconsumed_queue())

    with pytest.raises(refused, match="accont_id"):
        declare_and_call()
    assert not Job.objects.exists()
