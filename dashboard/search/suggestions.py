"""The names the explorer knows: for autocomplete, and for plain words in a query.

Task names come from the Celery app's registry (not Celery's own celery.*), the hourly
tallies of the last day and the newest few hundred jobs; queues from TASKS_QUEUES, the
workers' heartbeats and those newest jobs; workers from their heartbeats. Each is an
index range or a small table: never a DISTINCT over the job table.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.utils import timezone

from dashboard.search.language import FLAG_KEYS, FLAG_OR_TIME_KEYS, KNOWN, STATUSES, TIME_KEYS
from dashboard.search.tokens import quoted
from tasks.conf import layer_settings
from tasks.models import Job
from tasks.observations import JobTally, Period, WorkerBeat

RECENT_ROWS = 500
TALLIED_SINCE = timedelta(days=1)
CACHE_SECONDS = 60.0  # autocomplete asks on every keystroke; names change rarely
TIME_EXAMPLES = ("15m", "1h", "24h", "7d")


@dataclass(frozen=True)
class Known:
    names: frozenset[str]
    queues: frozenset[str]
    workers: frozenset[str]
    read_at: float


_cached: Known | None = None


def known() -> Known:
    """Read now (four small queries): what a query's plain words are matched against."""
    recent = list(
        Job.objects.order_by("-created_at").values_list("name", "queue", "worker")[:RECENT_ROWS]
    )
    tallied = (
        JobTally.objects.filter(period=Period.HOUR, start__gte=timezone.now() - TALLIED_SINCE)
        .order_by()
        .values_list("name", flat=True)
        .distinct()
    )
    beats = list(WorkerBeat.objects.values_list("hostname", "queues"))
    registered = [name for name in current_app.tasks if not name.startswith("celery.")]
    configured = [*layer_settings().queues, str(current_app.conf.task_default_queue or "")]
    consumed = [q for _, queues in beats if isinstance(queues, list) for q in queues]
    return Known(
        names=_names([*registered, *tallied, *(name for name, _, _ in recent)]),
        queues=_names([*configured, *consumed, *(queue for _, queue, _ in recent)]),
        workers=_names([*(host for host, _ in beats), *(worker for _, _, worker in recent)]),
        read_at=time.monotonic(),
    )


def cached() -> Known:
    """`known()`, read at most once a minute per process (autocomplete)."""
    global _cached
    if _cached is None or time.monotonic() - _cached.read_at > CACHE_SECONDS:
        _cached = known()
    return _cached


def forget() -> None:
    """Read the names again on next use (tests)."""
    global _cached
    _cached = None


def task_names(prefix: str, limit: int = 20) -> list[str]:
    """Known task names starting with `prefix` (case-insensitive), sorted."""
    return _starting_with(prefix, cached().names, limit)


def queue_names(prefix: str, limit: int = 20) -> list[str]:
    return _starting_with(prefix, cached().queues, limit)


def worker_names(prefix: str, limit: int = 20) -> list[str]:
    return _starting_with(prefix, cached().workers, limit)


def complete(word: str, limit: int = 20) -> list[str]:
    """Replacements for the term under the cursor: "sta" -> "status:", "task:bil" ->
    "task:billing.charge", "-status:failure,ret" -> "-status:failure,retry", ... (the
    search box's list; choosing one puts it in place of the term)."""
    sign = "-" if word.startswith("-") else ""
    key, colon, value = word.removeprefix("-").partition(":")
    if not colon:
        return [f"{sign}{k}:" for k in KNOWN if k.startswith(key.lower())][:limit]
    *chosen, typed = value.split(",")
    head = f"{sign}{key}:" + "".join(f"{v}," for v in chosen)
    taken = {v.lower() for v in chosen}
    options = [o for o in _values(key.lower(), typed, limit + len(taken)) if o.lower() not in taken]
    return [head + quoted(option) for option in options][:limit]


def _values(key: str, typed: str, limit: int) -> list[str]:
    if key == "status":
        return [s.lower() for s in STATUSES if s.lower().startswith(typed.lower())]
    if key == "task":
        return task_names(typed, limit)
    if key == "queue":
        return queue_names(typed, limit)
    if key == "worker":
        return worker_names(typed, limit)
    if key in FLAG_KEYS:
        return [v for v in ("yes", "no") if v.startswith(typed.lower())]
    if key in TIME_KEYS:
        return [v for v in TIME_EXAMPLES if v.startswith(typed.lower())]
    if key in FLAG_OR_TIME_KEYS:
        return [v for v in ("yes", "no", *TIME_EXAMPLES) if v.startswith(typed.lower())]
    return []


def _names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name for name in names if name)


def _starting_with(prefix: str, names: Iterable[str], limit: int) -> list[str]:
    lower = prefix.lower()
    return sorted(n for n in names if n.lower().startswith(lower))[:limit]
