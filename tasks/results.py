"""django-celery-results' database backend, with writes batched through the recorder.

Reads are django-celery-results' own (`AsyncResult(id).get()`, `.status`, `.info` read
its `TaskResult` rows). Writes become `ResultEvent`s on the same path as job events, so a
worker child spends one Redis round trip per task instead of two to three database
queries and a new connection (Celery's Django fixup closes it around every task).

Exception: a chord's header tasks store synchronously, because django-celery-results
counts the chord's finished parts in the database when each part returns.
"""

from __future__ import annotations

from typing import Any

from celery import states
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend

from tasks.recording import ResultEvent, record_result


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
