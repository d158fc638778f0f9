"""Dead letters, the operator's side: replay them as new jobs, or purge them.

A replayed dead letter runs again as a new job, linked by `retried_from`, from the real
JSON arguments on its row (never Celery's truncated `argsrepr`), on its original queue.
How jobs become dead letters is tasks.runtime.dead_lettering.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from tasks.models import DeadLetterResolution, Job
from tasks.operations import reruns
from tasks.runtime import dead_letter_queue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replayed:
    dead_letter: str
    new_job: str


def replay(task_ids: Iterable[str]) -> list[Replayed]:
    """Run parked dead letters again, each as a new job on its original queue.

    The new job's row is written (PENDING, `retried_from` set) and the old one marked
    replayed in one transaction; the message is published when it commits. Dead letters
    already replayed or purged are skipped.
    """
    replayed: list[Replayed] = []
    with transaction.atomic():
        jobs = list(
            Job.objects.select_for_update()
            .parked_dead_letters()
            .filter(task_id__in=list(task_ids))
            .order_by("created_at")
        )
        for job in jobs:
            new_id = reruns.rerun(job)
            replayed.append(Replayed(job.task_id, new_id))
        Job.objects.filter(pk__in=[job.pk for job in jobs]).resolve_dead_letters(
            DeadLetterResolution.REPLAYED, timezone.now()
        )
        ids = [job.task_id for job in jobs]
        transaction.on_commit(lambda: _remove_from_broker(ids))
    return replayed


def purge(task_ids: Iterable[str]) -> int:
    """Drop parked dead letters: off the broker's queue, marked purged on their rows."""
    with transaction.atomic():
        ids = list(
            Job.objects.parked_dead_letters()
            .filter(task_id__in=list(task_ids))
            .values_list("task_id", flat=True)
        )
        Job.objects.filter(task_id__in=ids).resolve_dead_letters(
            DeadLetterResolution.PURGED, timezone.now()
        )
        transaction.on_commit(lambda: _remove_from_broker(ids))
    return len(ids)


def _remove_from_broker(task_ids: list[str]) -> None:
    if not task_ids:
        return
    try:
        dead_letter_queue.remove(task_ids)
    except Exception:
        logger.exception("Could not remove %d dead letter(s) from the broker", len(task_ids))
