"""What happened to a job, as the recording path carries it: `JobEvent`, `ResultEvent`.

Plain values, encoded for the Redis stream (`as_message`) and decoded by the recorder
(`from_message`); datetimes travel as ISO strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from tasks.models import Job

DATETIMES = frozenset(
    f.name for f in Job._meta.concrete_fields if f.get_internal_type() == "DateTimeField"
)
RESULT_DATETIMES = frozenset({"date_created", "date_started", "date_done"})
#: A fact of a chord header's member that is not a Job column: the chord body's task id.
#: It travels with the member's events for its Batch row (tasks.record.batches) and is
#: left out of the job row (tasks.record.service.job_row).
CHORD_CALLBACK = "chord_callback"


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One thing that happened to one job."""

    task_id: str
    status: str
    attempt: int
    facts: Mapping[str, Any] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=timezone.now)

    def as_message(self) -> dict[str, Any]:
        return {
            "t": self.task_id,
            "s": self.status,
            "a": self.attempt,
            "f": dict(self.facts),
            "x": dict(self.state),
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> JobEvent:
        return cls(
            task_id=data["t"],
            status=data["s"],
            attempt=int(data["a"]),
            facts=_parse_times(data.get("f") or {}, DATETIMES),
            state=_parse_times(data.get("x") or {}, DATETIMES),
            at=_parse_time(data["at"]),
        )


@dataclass(frozen=True, slots=True)
class ResultEvent:
    """A result-backend write (django-celery-results' TaskResult columns)."""

    task_id: str
    fields: Mapping[str, Any]

    def as_message(self) -> dict[str, Any]:
        return {"t": self.task_id, "r": dict(self.fields)}

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> ResultEvent:
        return cls(task_id=data["t"], fields=_parse_times(data["r"], RESULT_DATETIMES))


def _parse_times(values: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    return {
        name: _parse_time(value) if name in names and isinstance(value, str) else value
        for name, value in values.items()
    }


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
