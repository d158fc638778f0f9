"""The audit trail of operator actions, in Django's admin log.

Every action taken from the dashboard is one LogEntry on the job model: who, when, which
action, and which jobs (their ids, up to a sample) or which filter, and how many. The
Activity page lists them; the admin's own "Recent actions" shows them too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet

from tasks.models import Job

#: Job ids kept in one entry's message; the count says how many there were in all.
SAMPLE_IDS = 50


@dataclass(frozen=True, slots=True)
class Activity:
    at: datetime
    user: str
    action: str
    summary: str
    scope: str
    task_ids: tuple[str, ...]
    count: int


def record(
    user: Any, action: str, summary: str, *, scope: str, task_ids: tuple[str, ...] | list[str]
) -> LogEntry:
    """Write one action to the admin log. `scope` is the filter or "selected jobs"."""
    message = {
        "dashboard": {
            "action": action,
            "summary": summary,
            "scope": scope,
            "count": len(task_ids),
            "task_ids": list(task_ids[:SAMPLE_IDS]),
        }
    }
    return LogEntry.objects.create(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(Job),
        object_id=task_ids[0] if len(task_ids) == 1 else "",
        object_repr=summary[:200],
        action_flag=CHANGE,
        change_message=json.dumps(message),
    )


def recent(limit: int = 200) -> list[Activity]:
    """The latest operator actions on jobs (dashboard and admin), newest first."""
    entries: QuerySet[LogEntry] = (
        LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Job))
        .select_related("user")
        .order_by("-action_time")[:limit]
    )
    return [_activity(entry) for entry in entries]


def _activity(entry: LogEntry) -> Activity:
    try:
        data = json.loads(entry.change_message or "{}")
    except ValueError:
        data = {}
    detail = data.get("dashboard") if isinstance(data, dict) else None
    user = entry.user.get_username() if entry.user else "?"
    if not isinstance(detail, dict):
        # An admin action: its own message.
        return Activity(
            entry.action_time,
            user,
            "admin",
            entry.get_change_message() or entry.object_repr,
            "admin",
            (entry.object_id,) if entry.object_id else (),
            1,
        )
    return Activity(
        at=entry.action_time,
        user=user,
        action=str(detail.get("action", "")),
        summary=str(detail.get("summary", entry.object_repr)),
        scope=str(detail.get("scope", "")),
        task_ids=tuple(str(i) for i in detail.get("task_ids", [])),
        count=int(detail.get("count", 0)),
    )
