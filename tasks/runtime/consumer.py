"""The worker's consumer: Celery's, plus a job row for messages it cannot run.

Celery logs a message whose body cannot be decoded and acknowledges it, and rejects a
message without task headers; either way the job it was meant to be vanishes without
a trace in the database. Where the message carries a task id, its row now says what
was wrong (FAILURE, "Malformed message: ..."). Selected by CELERY_WORKER_CONSUMER.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

from tasks.record import translate
from tasks.record.sinks import record

logger = logging.getLogger(__name__)


class TrackedConsumer(Consumer):
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        super().on_decode_error(message, exc)
        record_malformed(
            message, f"the body could not be decoded ({type(exc).__name__}: {exc})", self.hostname
        )

    def on_unknown_message(self, body: Any, message: Any) -> None:
        super().on_unknown_message(body, message)
        record_malformed(message, "it has no task name in its headers", self.hostname)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        super().on_invalid_task(body, message, exc)
        record_malformed(message, f"it is not a valid task message ({exc})", self.hostname)


def record_malformed(message: Any, problem: str, hostname: str) -> None:
    headers = getattr(message, "headers", None) or {}
    task_id = headers.get("id") if isinstance(headers, dict) else None
    if not isinstance(task_id, str) or not task_id:
        return  # nothing to attach it to; Celery has logged it
    task_name = headers.get("task")
    name = task_name if isinstance(task_name, str) else ""
    try:
        record(translate.malformed(task_id, name, problem, hostname))
    except Exception:
        logger.exception("Could not record malformed message %s", task_id)
