"""Celery signal receivers: translate (tasks.record.translate) and record (tasks.record.service).

Thin on purpose; no decisions are made here. Where each signal runs matters:
publish signals run in whichever process publishes (a view, a task, beat); `task_revoked`
and `task_unknown` in the worker's main process (RECEIVED is tasks.record.waiting_jobs');
prerun/success/failure/retry in the pool child.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import signals
from django.utils import timezone

from tasks import correlation
from tasks.conf import layer_settings
from tasks.record import translate
from tasks.record.events import JobEvent
from tasks.record.sinks import record
from tasks.runtime import dead_lettering

logger = logging.getLogger(__name__)

# Priority is a message property, which after_task_publish does not receive; nor does
# it know when the publish began. Both
# signals run in the publishing thread around one synchronous publish, so a
# thread-local slot carries it over (nothing accumulates if the publish fails).
_publishing = threading.local()


def connect() -> None:
    """Connect every receiver once (idempotent: dispatch_uid)."""
    for signal, receiver in (
        (signals.before_task_publish, on_before_publish),
        (signals.after_task_publish, on_after_publish),
        (signals.task_prerun, on_prerun),
        (signals.task_success, on_success),
        (signals.task_failure, on_failure),
        (signals.task_retry, on_retry),
        (signals.task_revoked, on_revoked),
        (signals.task_unknown, on_unknown),
    ):
        signal.connect(receiver, weak=False, dispatch_uid=f"tasks.receivers.{receiver.__name__}")


def _record(event: JobEvent) -> None:
    try:
        record(event)
    except Exception:
        logger.exception("Could not record %s for job %s", event.status, event.task_id)


def on_before_publish(headers: dict[str, Any], properties: dict[str, Any], **_: Any) -> None:
    if not headers.get(correlation.HEADER):
        # Outside a request or task, a job (or a whole canvas) is its own correlation
        # scope: its root id.
        headers[correlation.HEADER] = (
            correlation.current() or headers.get("root_id") or headers["id"]
        )
    _publishing.priority = properties.get("priority")
    # The message can be running before publish() returns: "sent" is when it started.
    _publishing.started = timezone.now()


def on_after_publish(headers: dict[str, Any], body: Any, routing_key: str, **_: Any) -> None:
    priority = getattr(_publishing, "priority", None)
    sent_at = getattr(_publishing, "started", None) or timezone.now()
    _publishing.priority = _publishing.started = None
    if headers.get("task") in _untracked():
        return
    _record(translate.published(headers, body, routing_key, priority, sent_at))


def on_prerun(task: Any, **_: Any) -> None:
    if task.name not in _untracked():
        _record(translate.started(task))


def on_success(sender: Any, result: Any, **_: Any) -> None:
    if sender.name not in _untracked():
        _record(translate.succeeded(sender.request, result))


def on_failure(
    sender: Any,
    task_id: str,
    exception: BaseException,
    einfo: Any = None,
    args: Any = None,
    kwargs: Any = None,
    **_: Any,
) -> None:
    try:
        dead_lettering.record_final_failure(
            sender, task_id, exception, getattr(einfo, "traceback", "") or "", args, kwargs
        )
    except Exception:
        logger.exception("Could not record the failure of job %s", task_id)


def on_retry(request: Any, reason: Any, einfo: Any = None, **_: Any) -> None:
    _record(translate.retrying(request, reason, getattr(einfo, "traceback", "") or ""))


def on_revoked(
    request: Any, terminated: bool = False, signum: Any = None, expired: bool = False, **_: Any
) -> None:
    # Celery passes a worker Request or, for revocations it discards, the task Context.
    request_dict = getattr(request, "request_dict", None) or {}
    retries = int(getattr(request, "retries", None) or request_dict.get("retries") or 0)
    _record(
        translate.revoked(
            request.id, retries, terminated=terminated, expired=expired, signum=signum
        )
    )


def on_unknown(sender: Any, message: Any, name: str, id: str, **_: Any) -> None:  # noqa: A002
    try:
        dead_lettering.record_unknown_task(
            id,
            name,
            message.headers or {},
            _decoded_body(message),
            message.delivery_info or {},
            getattr(sender, "hostname", ""),
        )
    except Exception:
        logger.exception("Could not record unknown task %s[%s]", name, id)


def _untracked() -> frozenset[str]:
    """Housekeeping tasks that run every few seconds and would only bury real jobs
    (TASKS_UNTRACKED_TASKS); their failures are still recorded."""
    return layer_settings().untracked_tasks


def _decoded_body(message: Any) -> Any:
    try:
        return message.decode()
    except Exception:
        return None
