"""django-celery-results' database backend, with writes batched through the recorder.

Reads are django-celery-results' own (`AsyncResult(id).get()`, `.status`, `.info` read
its `TaskResult` rows). Writes become `ResultEvent`s on the same path as job events, so a
worker child spends one Redis round trip per task instead of two to three database
queries and a new connection (Celery's Django fixup closes it around every task).

The common case, a task that returns plain JSON data, is not encoded in the pool child:
the event carries the value and the task's argument reprs as they are, and the process
that writes the row (`tasks.record.service._result_row`) encodes them as django-celery-results
would have. Everything else (exceptions, results holding dates or other types the JSON
serializer tags, child tasks, `request.meta`) is encoded here, by django-celery-results.

Exception: a chord's header tasks store synchronously, because django-celery-results
counts the chord's finished parts in the database when each part returns.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from celery import states
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend

from tasks.record.events import ResultEvent
from tasks.record.service import RAW_RESULT
from tasks.record.sinks import record_result

_SCALARS = frozenset({str, int, float, bool, type(None)})
_MAX_DEPTH = 32


def plain_json(value: Any, depth: int = 0) -> bool:
    """True when JSON holds the value as it is: decoding gives back the same value.

    Dates, decimals, UUIDs and bytes are tagged by kombu's JSON (and decoded back to
    their type), so they take the encoding path; so do dicts with keys other than str.
    """
    kind = type(value)
    if kind in _SCALARS:
        return True
    if depth >= _MAX_DEPTH:
        return False
    if kind is list or kind is tuple:
        return all(plain_json(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(key) is str and plain_json(item, depth + 1) for key, item in value.items())
    return False


class BatchedDatabaseBackend(DatabaseBackend):
    def _store_result(
        self,
        task_id: str,
        result: Any,
        status: str,
        traceback: str | None = None,
        request: Any = None,
        using: str | None = None,
    ) -> Any:
        if request is not None and getattr(request, "chord", None):
            return super()._store_result(task_id, result, status, traceback, request, using)
        if status == states.STARTED:
            # The final state follows in the same flush; this only marks the start.
            now = timezone.now()
            record_result(
                ResultEvent(task_id, {"status": status, "date_started": now, "date_done": now})
            )
            return result
        if status == states.SUCCESS and self._plain_success(request, result, traceback):
            record_result(
                ResultEvent(
                    task_id,
                    {
                        "status": status,
                        "date_done": timezone.now(),
                        RAW_RESULT: result,
                        "task_args": request.argsrepr,
                        "task_kwargs": request.kwargsrepr,
                        "task_name": request.task,
                        "worker": request.hostname,
                    },
                )
            )
            return result
        content_type, content_encoding, encoded = self.encode_content(result)
        meta = {
            **self._get_meta_from_request(request),
            "children": self.current_task_children(request),
        }
        _, _, encoded_meta = self.encode_content(meta)
        now = timezone.now()
        fields = {
            "content_type": content_type,
            "content_encoding": content_encoding,
            "result": encoded,
            "status": status,
            "traceback": traceback,
            "meta": encoded_meta,
            "date_done": now,
            **self._get_extended_properties(request, traceback),
        }
        record_result(ResultEvent(task_id, fields))
        return result

    @cached_property
    def _raw_results(self) -> bool:
        """Whether a plain result may travel unencoded: JSON results, extended rows (what
        `result_row` writes), no compression."""
        return (
            self.serializer == "json"
            and not self.compression
            and bool(self.app.conf.find_value_for_key("extended", "result"))
        )

    def _plain_success(self, request: Any, result: Any, traceback: str | None) -> bool:
        return (
            self._raw_results
            and request is not None
            and traceback is None
            and not getattr(request, "meta", None)
            and not getattr(request, "children", None)
            and getattr(request, "periodic_task_name", None) is None
            and isinstance(getattr(request, "argsrepr", None), str)
            and isinstance(getattr(request, "kwargsrepr", None), str)
            and plain_json(result)
        )
