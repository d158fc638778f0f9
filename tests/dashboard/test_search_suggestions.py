"""Autocomplete: registered and recently seen names, completed term by term."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.search import suggestions
from tasks.models import Job
from tasks.observations import JobTally, Period, WorkerBeat

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_recent_names() -> Iterator[None]:
    suggestions.forget()
    yield
    suggestions.forget()


def seen(task_id: str, name: str, queue: str = "", worker: str = "") -> None:
    Job.objects.create(
        task_id=task_id, name=name, queue=queue, worker=worker, created_at=timezone.now()
    )


def test_task_names_are_registered_or_recent_never_celerys_own() -> None:
    seen("a", "zz_remote.billing.charge", queue="zz-remote")
    names = suggestions.task_names("", 100)
    assert "tasks.outbox.publish_due" in names  # registered by the layer
    assert "zz_remote.billing.charge" in names  # only seen in a job row
    assert not [n for n in names if n.startswith("celery.")]
    assert suggestions.task_names("ZZ_REMOTE.b") == ["zz_remote.billing.charge"]
    assert suggestions.task_names("zz", 0) == []


def test_queue_names_from_the_setting_and_recent_jobs() -> None:
    seen("a", "x", queue="zz-remote")
    assert suggestions.queue_names("") == sorted({"celery", "default", "high", "low", "zz-remote"})
    assert suggestions.queue_names("h") == ["high"]


def test_names_from_tallies_and_heartbeats() -> None:
    now = timezone.now()
    for name, age in (("zz.tallied", timedelta(hours=3)), ("zz.long_ago", timedelta(days=3))):
        JobTally.objects.create(
            period=Period.HOUR, start=now - age, name=name, queue="q", status="SUCCESS"
        )
    WorkerBeat.objects.create(
        hostname="zz@beat", pid=1, queues=["zz-consumed"], started_at=now, last_seen_at=now
    )
    assert suggestions.task_names("zz") == ["zz.tallied"]
    assert suggestions.queue_names("zz") == ["zz-consumed"]
    assert suggestions.worker_names("zz") == ["zz@beat"]


def test_autocomplete_keeps_names_for_a_while() -> None:
    assert suggestions.queue_names("zz") == []
    seen("a", "x", queue="zz-later")
    assert suggestions.queue_names("zz") == []  # read a moment ago
    suggestions.forget()
    assert suggestions.queue_names("zz") == ["zz-later"]
    assert "zz-later" in suggestions.known().queues  # what queries use: read each time


def test_completing_keys_and_values() -> None:
    seen("a", "zz.billing.charge", queue="high", worker="w1@host")
    seen("b", "zz.billing.refund")
    assert suggestions.complete("sta") == ["status:"]
    assert suggestions.complete("-q") == ["-queue:"]
    assert suggestions.complete("status:f") == ["status:failure"]
    assert suggestions.complete("-status:failure,ret") == ["-status:failure,retry"]
    assert suggestions.complete("status:failure,") == [
        f"status:failure,{s}"
        for s in ("pending", "sent", "received", "started", "retry", "success", "revoked")
    ]
    assert suggestions.complete("task:zz.billing.") == [
        "task:zz.billing.charge",
        "task:zz.billing.refund",
    ]
    assert suggestions.complete("queue:hi") == ["queue:high"]
    assert suggestions.complete("worker:w") == ["worker:w1@host"]
    assert suggestions.complete("dead:") == ["dead:yes", "dead:no"]
    assert suggestions.complete("after:1") == ["after:15m", "after:1h"]
    assert suggestions.complete("error:x") == []
    assert suggestions.complete("nothing") == []
