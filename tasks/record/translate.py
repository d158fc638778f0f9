"""Translate what Celery tells us (messages, requests, signal arguments) into JobEvents.

Pure functions apart from reading the clock: no database, no broker. Each names the
state it reports; `tasks.receivers` calls them and hands the result to
`tasks.record.sinks.record`.
"""

from __future__ import annotations

import traceback as tb
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tasks import correlation
from tasks.models import JobStatus
from tasks.record.events import CHORD_CALLBACK, JobEvent


def pending(
    task_id: str,
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    queue: str | None,
    priority: int | None,
    correlation_id: str | None,
) -> JobEvent:
    """Recorded by `.delay()` inside a transaction, before anything is published."""
    return JobEvent(
        task_id=task_id,
        status=JobStatus.PENDING,
        attempt=0,
        facts=_drop_empty(
            name=name,
            args=list(args),
            kwargs=dict(kwargs),
            queue=queue,
            priority=priority,
            correlation_id=correlation_id,
        ),
    )


def published(
    headers: Mapping[str, Any],
    body: Any,
    routing_key: str | None,
    priority: int | None,
    sent_at: datetime,
) -> JobEvent:
    """The message is on the broker: SENT, or RETRY when it is a retry's re-publish.

    On every publish's path, so it builds its dicts directly.
    """
    retries = int(headers.get("retries") or 0)
    facts: dict[str, Any] = {"name": headers["task"], "sent_at": sent_at}
    if isinstance(body, (list, tuple)) and len(body) == 3:  # protocol 2: args, kwargs, embed
        facts["args"], facts["kwargs"] = list(body[0]), dict(body[1])
    if routing_key:
        facts["queue"] = routing_key
    if priority is not None:
        facts["priority"] = priority
    for fact, header in _LINEAGE_HEADERS:
        value = headers.get(header)
        if value:
            facts[fact] = value
    if facts.get("parent_id") == headers["id"]:
        del facts["parent_id"]  # a retry's message names the job itself as its parent
    if "group_id" in facts:
        _add_membership(facts, headers.get("group_index"), body)
    eta = headers.get("eta")
    return JobEvent(
        task_id=headers["id"],
        status=JobStatus.RETRY if retries else JobStatus.SENT,
        attempt=retries,
        facts=facts,
        state={"eta": _parse_time(eta)} if eta else {},
        at=sent_at,
    )


_LINEAGE_HEADERS = (
    ("parent_id", "parent_id"),
    ("root_id", "root_id"),
    ("group_id", "group"),
    ("correlation_id", correlation.HEADER),
)


def _add_membership(facts: dict[str, Any], index: Any, body: Any) -> None:
    """A group member's position, and the chord's callback when it is a chord's header.

    Celery (protocol 2) puts `group_index` in the headers of every task of a group or
    chord header, and the chord's body signature in the message's embed (`chord`); the
    body itself carries the group id but no position, so it is not counted a member.
    """
    if isinstance(index, int):
        facts["group_index"] = index
    if isinstance(body, (list, tuple)) and len(body) == 3 and isinstance(body[2], Mapping):
        callback = chord_callback_id(body[2].get("chord"))
        if callback:
            facts[CHORD_CALLBACK] = callback


def chord_callback_id(chord: Any) -> str:
    """The task id of a chord's body (a signature, as a dict) or ''."""
    if isinstance(chord, Mapping):
        options = chord.get("options")
        if isinstance(options, Mapping):
            task_id = options.get("task_id")
            if isinstance(task_id, str):
                return task_id
    return ""


def received(request: Any) -> JobEvent:
    """A worker's main process took the message (`task_received`, a worker Request).

    Status only: the main process is Celery's bottleneck, and the message's facts come
    with the publisher's SENT and the pool child's STARTED anyway.
    """
    headers = request.request_dict
    eta = headers.get("eta")
    state: dict[str, Any] = {"worker": request.hostname}
    if eta:
        state["eta"] = _parse_time(eta)
    return JobEvent(
        task_id=request.id,
        status=JobStatus.RECEIVED,
        attempt=int(headers.get("retries") or 0) + 1,
        state=state,
    )


def started(task: Any) -> JobEvent:
    """The pool child is about to run the body (`task_prerun`).

    It carries the message's facts too, so the child's own events (flushed together at
    the end of the task) make a complete row even before other processes' events land.
    """
    request = task.request
    delivery = request.delivery_info or {}
    facts = _drop_empty(
        name=task.name,
        args=list(request.args or ()),
        kwargs=dict(request.kwargs or {}),
        queue=delivery.get("routing_key"),
        priority=delivery.get("priority"),
        parent_id=request.parent_id if request.parent_id != request.id else None,
        root_id=request.root_id,
        group_id=request.group,
        correlation_id=getattr(request, correlation.HEADER, None) or request.root_id or request.id,
    )
    if request.group:
        index = getattr(request, "group_index", None)
        if isinstance(index, int):
            facts["group_index"] = index
        callback = chord_callback_id(getattr(request, "chord", None))
        if callback:
            facts[CHORD_CALLBACK] = callback
    return JobEvent(
        task_id=request.id,
        status=JobStatus.STARTED,
        attempt=(request.retries or 0) + 1,
        facts=facts,
        state=_drop_empty(started_at=timezone.now(), worker=request.hostname),
    )


def progressed(task_request: Any, percent: int, message: str) -> JobEvent:
    """The running task reported progress; it stays STARTED."""
    return JobEvent(
        task_id=task_request.id,
        status=JobStatus.STARTED,
        attempt=(task_request.retries or 0) + 1,
        state={"progress": percent, "progress_message": message[:255]},
    )


def succeeded(task_request: Any, result: Any) -> JobEvent:
    return JobEvent(
        task_id=task_request.id,
        status=JobStatus.SUCCESS,
        attempt=(task_request.retries or 0) + 1,
        # An earlier attempt's error stays in the attempt history, not on the job.
        state={
            "finished_at": timezone.now(),
            "result": result,
            "progress": 100,
            "error": "",
            "traceback": "",
        },
    )


def failed(task_id: str, retries: int, exception: BaseException, traceback_text: str) -> JobEvent:
    return JobEvent(
        task_id=task_id,
        status=JobStatus.FAILURE,
        attempt=retries + 1,
        state={
            "finished_at": timezone.now(),
            "error": describe(exception),
            "traceback": traceback_text or _format_traceback(exception),
        },
    )


def retrying(task_request: Any, reason: Any, traceback_text: str) -> JobEvent:
    """An attempt failed and Celery scheduled the next (`task_retry`)."""
    cause = getattr(reason, "exc", None) or reason
    return JobEvent(
        task_id=task_request.id,
        status=JobStatus.RETRY,
        attempt=(task_request.retries or 0) + 1,
        state=_drop_empty(
            error=describe(cause),
            traceback=traceback_text,
            eta=_retry_eta(getattr(reason, "when", None)),
            worker=getattr(task_request, "hostname", None),
            # When this attempt ended; the final state overwrites it.
            finished_at=timezone.now(),
        ),
    )


def revoked(
    task_id: str, retries: int, *, terminated: bool, expired: bool, signum: Any
) -> JobEvent:
    if expired:
        why = "Expired before a worker could run it."
    elif terminated:
        why = f"Terminated while running (signal {signum})."
    else:
        why = "Revoked before it ran."
    return JobEvent(
        task_id=task_id,
        status=JobStatus.REVOKED,
        attempt=retries,
        state={"finished_at": timezone.now(), "error": why},
    )


def unknown_task(
    task_id: str, name: str, headers: Mapping[str, Any], body: Any, hostname: str
) -> JobEvent:
    """A worker got a message for a task it does not have (`task_unknown`)."""
    args, kwargs = body_arguments(body)
    return JobEvent(
        task_id=task_id,
        status=JobStatus.FAILURE,
        attempt=0,
        facts=_drop_empty(
            name=name,
            args=args,
            kwargs=kwargs,
            parent_id=headers.get("parent_id"),
            root_id=headers.get("root_id"),
            group_id=headers.get("group"),
            group_index=headers.get("group_index") if headers.get("group") else None,
            correlation_id=headers.get(correlation.HEADER) or headers.get("root_id") or task_id,
        ),
        state={
            "finished_at": timezone.now(),
            "worker": hostname,
            "error": (
                f"NotRegistered: no task named {name!r} is registered on worker {hostname}. "
                "Check the name, that the module defining it is imported by the worker "
                "(an installed app's tasks.py, or CELERY_IMPORTS), and that the worker "
                "runs the current code."
            ),
        },
    )


def describe(exception: BaseException) -> str:
    return f"{type(exception).__name__}: {exception}"


def body_arguments(body: Any) -> tuple[Any, Any]:
    # Protocol 2 body: (args, kwargs, embed). Values that JSON cannot hold are made
    # safe where events are encoded (tasks.record.sinks), not here on the hot path.
    if isinstance(body, (list, tuple)) and len(body) == 3:
        return list(body[0]), dict(body[1])
    return None, None


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_datetime(value)
    return None


def _retry_eta(when: Any) -> datetime | None:
    if isinstance(when, datetime):
        return when
    if isinstance(when, (int, float)):
        return timezone.now() + timedelta(seconds=when)
    return None


def _format_traceback(exception: BaseException) -> str:
    return "".join(tb.format_exception(type(exception), exception, exception.__traceback__))


def _drop_empty(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None and value != ""}


def cancelled_while_running(task_request: Any) -> JobEvent:
    """A running job saw `self.is_cancelled()` turn true and stopped (TrackedTask.__call__)."""
    return JobEvent(
        task_id=task_request.id,
        status=JobStatus.REVOKED,
        attempt=(task_request.retries or 0) + 1,
        state=_drop_empty(
            finished_at=timezone.now(),
            worker=task_request.hostname,
            error="Cancelled while running: the task stopped at a cancellation check.",
        ),
    )


def cancelled_before_publish(task_id: str, attempts: int) -> JobEvent:
    """An operator cancelled a job whose message was still held in the outbox.

    `attempts` is the row's own count, so a job withdrawn before a retry keeps it.
    """
    return JobEvent(
        task_id=task_id,
        status=JobStatus.REVOKED,
        attempt=attempts,
        state={
            "finished_at": timezone.now(),
            "error": "Cancelled before it was published: its message was withdrawn.",
        },
    )


def malformed(task_id: str, name: str, problem: str, hostname: str) -> JobEvent:
    """A worker got a message for this id that it cannot run as a task."""
    return JobEvent(
        task_id=task_id,
        status=JobStatus.FAILURE,
        attempt=0,
        facts=_drop_empty(name=name),
        state={
            "finished_at": timezone.now(),
            "worker": hostname,
            "error": f"Malformed message: {problem}. The worker dropped it and kept running.",
        },
    )
