"""Autocomplete for the explorer's search box: the word under the cursor, completed.

`task:bil` -> `task:billing.charge`, ...; `queue:h` -> `queue:high`; `status:f` ->
`status:failure`; a bare `sta` -> the keys it may start (`status:`). Task names come from
the Celery app's registry and the queues from TASKS_QUEUES: nothing reads the job table.
"""

from __future__ import annotations

from celery import current_app

from dashboard.search.language import KNOWN, STATUSES
from tasks.conf import layer_settings

LIMIT = 20


def complete(word: str, limit: int = LIMIT) -> list[str]:
    negated = word.startswith("-")
    key, colon, value = word.removeprefix("-").partition(":")
    sign = "-" if negated else ""
    if not colon:
        return [f"{sign}{known}:" for known in KNOWN if known.startswith(key.lower())][:limit]
    choices = _values(key.lower())
    lowered = value.lower()
    found = [choice for choice in choices if choice.lower().startswith(lowered)]
    found += [c for c in choices if lowered in c.lower() and c not in found]
    return [f"{sign}{key}:{choice}" for choice in found[:limit]]


def _values(key: str) -> list[str]:
    if key == "task":
        return sorted(name for name in current_app.tasks if not name.startswith("celery."))
    if key == "queue":
        return list(layer_settings().queues)
    if key == "status":
        return [status.lower() for status in STATUSES]
    if key in ("dead", "retried"):
        return ["yes", "no"]
    return []
