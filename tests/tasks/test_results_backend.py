"""tasks.record.results: a plain result leaves the pool child unencoded, and its TaskResult row
is the one django-celery-results would have written."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from celery import states
from celery.app.task import Context
from django_celery_results.backends.database import DatabaseBackend
from django_celery_results.models import TaskResult

from project.celery import app
from tasks.record import sinks
from tasks.record.events import ResultEvent
from tasks.record.results import plain_json
from tasks.record.service import RAW_RESULT

pytestmark = pytest.mark.django_db

COMPARED = (
    "status",
    "content_type",
    "content_encoding",
    "result",
    "traceback",
    "meta",
    "task_args",
    "task_kwargs",
    "task_name",
    "worker",
    "periodic_task_name",
)


class Captured:
    """A sink that keeps what the backend records, then writes it like a recorder."""

    def __init__(self) -> None:
        self.results: list[ResultEvent] = []

    def emit_job(self, event: Any) -> None:
        pass

    def emit_result(self, event: ResultEvent) -> None:
        self.results.append(event)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def write_through_the_stream(self) -> None:
        # The recorder's view: the events after the stream's JSON round trip.
        from tasks.record import service

        _, results = sinks.decode(sinks.encode([], self.results))
        service.write([], results)


@pytest.fixture
def captured() -> Any:
    previous = sinks.current()
    sink = Captured()
    sinks.install(sink)  # type: ignore[arg-type]
    yield sink
    sinks.install(previous)


def a_request(task_id: str) -> Context:
    return Context(
        id=task_id,
        task="tasks.demo.add",
        args=[1, 2],
        kwargs={"z": "é"},
        argsrepr="(1, 2)",
        kwargsrepr="{'z': 'é'}",
        hostname="celery@w1",
        delivery_info={"routing_key": "default"},
    )


def stored(result: Any, captured: Captured) -> tuple[TaskResult, TaskResult, Any]:
    """(django-celery-results' own row, ours, the event our backend recorded)."""
    backend = app.backend
    reference, ours = str(uuid.uuid4()), str(uuid.uuid4())
    DatabaseBackend._store_result(
        backend, reference, result, states.SUCCESS, None, a_request(reference)
    )
    backend.store_result(ours, result, states.SUCCESS, request=a_request(ours))
    (event,) = captured.results
    captured.write_through_the_stream()
    return (
        TaskResult.objects.get(task_id=reference),
        TaskResult.objects.get(task_id=ours),
        event,
    )


@pytest.mark.parametrize(
    "result",
    [3, "text", None, 2.5, True, [1, "a", None, [2]], {"a": {"b": [1, 2]}, "é": "ü"}, (1, 2)],
)
def test_a_plain_result_is_not_encoded_in_the_child_and_stored_as_before(
    result: Any, captured: Captured
) -> None:
    reference, ours, event = stored(result, captured)
    assert RAW_RESULT in event.fields
    assert {f: getattr(ours, f) for f in COMPARED} == {f: getattr(reference, f) for f in COMPARED}
    assert (
        app.backend.get_task_meta(ours.task_id)["result"]
        == app.backend.get_task_meta(reference.task_id)["result"]
    )


@pytest.mark.parametrize(
    "result",
    [
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        {"when": dt.date(2026, 1, 2)},
        [Decimal("1.5")],
        uuid.UUID(int=1),
        {1: "int key"},
    ],
)
def test_a_result_json_would_change_is_encoded_by_django_celery_results(
    result: Any, captured: Captured
) -> None:
    reference, ours, event = stored(result, captured)
    assert RAW_RESULT not in event.fields
    assert {f: getattr(ours, f) for f in COMPARED} == {f: getattr(reference, f) for f in COMPARED}
    decoded = app.backend.get_task_meta(ours.task_id)["result"]
    assert type(decoded) is type(result)  # a datetime comes back a datetime, not a string


def test_plain_json_accepts_only_what_decodes_to_itself() -> None:
    assert plain_json({"a": [1, 2.0, "x", None, True, {"b": ()}]})
    assert not plain_json({"a": [dt.datetime.now(dt.UTC)]})
    assert not plain_json(b"bytes")
    assert not plain_json({("tuple",): 1})
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    assert not plain_json(deep)
