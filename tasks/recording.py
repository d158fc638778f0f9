"""The recording service: the one place that writes job state.

Signal receivers, the publish path and (later) operator actions describe what happened
as a `JobEvent` and hand it to `record`. Nothing else writes `Job` rows. Keeping every
write behind this function is what lets the write strategy change (today: one UPDATE,
or an INSERT for a job seen for the first time; later: buffered and batched) without
touching the callers.

An event has two kinds of fields:
- `facts` describe the message (name, args, queue, parents, ...). They never change for
  a task id, so they fill whatever is still empty and never overwrite.
- `state` belongs to the status (timestamps, worker, result, error). It is written only
  when the event wins `tasks.lifecycle.supersedes`, so a late STARTED never overwrites
  SUCCESS.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Least
from django.utils import timezone

from tasks import lifecycle
from tasks.models import Job

logger = logging.getLogger(__name__)

_FIELDS = {f.name: f for f in Job._meta.concrete_fields}


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One thing that happened to one job."""

    task_id: str
    status: str
    attempt: int
    facts: Mapping[str, Any] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=timezone.now)


def record(event: JobEvent) -> None:
    """Apply one event to its job's row, creating the row if this is the first news of it.

    Runs in the caller's transaction when there is one: that is how a PENDING row
    written by `.delay()` inside `transaction.atomic` disappears on rollback.
    """
    updates = _conditional_updates(event)
    if Job.objects.filter(task_id=event.task_id).update(**updates):
        return
    try:
        with transaction.atomic():
            Job.objects.create(
                task_id=event.task_id,
                status=event.status,
                attempts=event.attempt,
                created_at=event.at,
                **event.facts,
                **event.state,
            )
    except IntegrityError:
        # Another process inserted the row between our UPDATE and INSERT.
        Job.objects.filter(task_id=event.task_id).update(**updates)


def _conditional_updates(event: JobEvent) -> dict[str, Case | Least]:
    wins = lifecycle.superseded_rows(event.status, event.attempt)
    # The row may have been created by a later event (a fast worker's RECEIVED before
    # the publisher's SENT): the job was created at the earliest event we hear of.
    updates: dict[str, Case | Least] = {
        "created_at": Least(F("created_at"), Value(event.at, output_field=_FIELDS["created_at"]))
    }
    for name, value in event.facts.items():
        updates[name] = _when(_is_empty(name), name, value)
    for name, value in {"status": event.status, "attempts": event.attempt, **event.state}.items():
        updates[name] = _when(wins, name, value)
    return updates


def _when(condition: Q, name: str, value: Any) -> Case:
    return Case(
        When(condition, then=Value(value, output_field=_FIELDS[name])),
        default=F(name),
        output_field=_FIELDS[name],
    )


def _is_empty(name: str) -> Q:
    if _FIELDS[name].null:
        return Q(**{f"{name}__isnull": True})
    return Q(**{name: ""})
