"""Dead-lettering: a job that failed for good is kept, visible and replayable.

A final failure (retries exhausted, an exception not in `autoretry_for`, a worker lost
more often than `max_retries`, a hard time limit, a task unknown to the worker) ends
the job FAILURE with `dead_lettered_at` set and the message's headers and routing on
the row (`Job.message`), through the same recording path as every other state. The
message itself goes to the broker's `dead_letter` queue (tasks.runtime.dead_letter_queue):
RabbitMQ routes it there through the dead-letter exchange when the worker rejects it;
on Redis, which has no such thing, this module publishes a copy there.

Operators then replay or purge them (tasks.operations.dead_letters). Tasks opt out
with `dead_letter=False`; the default for every task, plain `@shared_task` included,
is the TASKS_DEAD_LETTER setting.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from billiard.exceptions import TimeLimitExceeded
from django.utils import timezone

from tasks import correlation
from tasks.conf import layer_settings
from tasks.record import translate
from tasks.record.events import JobEvent
from tasks.record.sinks import record
from tasks.runtime import dead_letter_queue

logger = logging.getLogger(__name__)


def enabled_for(task: Any) -> bool:
    """Whether a final failure of this task is dead-lettered."""
    choice = getattr(task, "dead_letter", None)
    if choice is None:
        return layer_settings().dead_letter
    return bool(choice)


LINEAGE_HEADERS = ("root_id", "parent_id", "group", correlation.HEADER)


def routed_message(
    task_name: str, delivery: Mapping[str, Any], retries: int, lineage: Mapping[str, Any]
) -> dict[str, Any]:
    """What publishing this job again needs beyond its arguments (stored on the row)."""
    return {
        "task": task_name,
        "queue": delivery.get("routing_key") or "",
        "exchange": delivery.get("exchange") or "",
        "routing_key": delivery.get("routing_key") or "",
        "priority": delivery.get("priority"),
        "retries": retries,
        "headers": {name: lineage[name] for name in LINEAGE_HEADERS if lineage.get(name)},
    }


def message_of(request: Any, task_name: str) -> dict[str, Any]:
    """`routed_message` from a task request (pool child or main process)."""
    return routed_message(
        task_name,
        getattr(request, "delivery_info", None) or {},
        getattr(request, "retries", 0) or 0,
        {name: getattr(request, name, None) for name in LINEAGE_HEADERS},
    )


def record_final_failure(
    task: Any,
    task_id: str,
    exception: BaseException,
    traceback_text: str,
    args: Any = None,
    kwargs: Any = None,
) -> None:
    """The task failed for good (Celery's `task_failure`): record it, dead-letter it.

    In the worker's main process (hard time limit) Celery sends the signal without
    the task's request; the message is then rebuilt from the signal's arguments.
    """
    request = task.request
    same_request = getattr(request, "id", None) == task_id
    retries = (request.retries or 0) if same_request else 0
    event = translate.failed(task_id, retries, exception, traceback_text)
    if not enabled_for(task):
        record(event)
        return
    if same_request:
        message = message_of(request, task.name)
        args = list(getattr(request, "args", None) or ())
        kwargs = dict(getattr(request, "kwargs", None) or {})
    else:
        message = routed_message(task.name, {}, retries, {})
        args, kwargs = list(args or ()), dict(kwargs or {})
    record(_dead_lettered(event, message))
    # A timed-out message is acknowledged (see CELERY_TASK_ACKS_ON_TIMEOUT), so it
    # needs the copy even where the broker dead-letters the messages workers reject.
    copy_needed = isinstance(exception, TimeLimitExceeded) or (
        not dead_letter_queue.broker_dead_letters()
    )
    try:
        if copy_needed and _first_time_parked(task_id):
            dead_letter_queue.park(task_id, task.name, args, kwargs, message)
    except Exception:
        # The row holds everything a replay needs; the broker copy is for browsing.
        logger.exception("Could not put dead letter %s on the broker's queue", task_id)


# Celery reports a hard time limit twice in the main process (the timeout, then the
# killed pool process): one dead letter is enough.
_RECENTLY_PARKED: OrderedDict[str, None] = OrderedDict()
_RECENTLY_PARKED_MAX = 10_000


def _first_time_parked(task_id: str) -> bool:
    if task_id in _RECENTLY_PARKED:
        return False
    _RECENTLY_PARKED[task_id] = None
    if len(_RECENTLY_PARKED) > _RECENTLY_PARKED_MAX:
        _RECENTLY_PARKED.popitem(last=False)
    return True


def record_unknown_task(
    task_id: str,
    name: str,
    headers: Mapping[str, Any],
    body: Any,
    delivery: Mapping[str, Any],
    hostname: str,
) -> None:
    """A worker got a message for a task it does not have: FAILURE, dead-lettered.

    Celery rejects such a message; RabbitMQ dead-letters it, on Redis it is copied.
    """
    event = translate.unknown_task(task_id, name, headers, body, hostname)
    if not layer_settings().dead_letter:
        record(event)
        return
    message = routed_message(name, delivery, int(headers.get("retries") or 0), headers)
    record(_dead_lettered(event, message))
    args, kwargs = translate.body_arguments(body)
    try:
        if not dead_letter_queue.broker_dead_letters():  # else it moves the rejected message
            dead_letter_queue.park(task_id, name, args or [], kwargs or {}, message)
    except Exception:
        logger.exception("Could not put dead letter %s on the broker's queue", task_id)


def _dead_lettered(event: JobEvent, message: Mapping[str, Any]) -> JobEvent:
    return JobEvent(
        task_id=event.task_id,
        status=event.status,
        attempt=event.attempt,
        facts=event.facts,
        state={**event.state, "dead_lettered_at": timezone.now(), "message": dict(message)},
        at=event.at,
    )
