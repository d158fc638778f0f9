"""Queues, the operator's side: what waits where and how fast it drains, pause and
resume consuming a queue on every worker, purge what waits.

`queue_states()` answers from the broker (depth, oldest message: tasks.broker) and
from tables the recorder keeps (tallies of finished jobs per queue and minute, worker
heartbeats, pauses); it never counts job rows, so it stays fast at any table size and
/metrics and /readyz can call it on every scrape.

A pause lives in two places. The `QueuePause` row is the truth and the memory: a
worker reads it when it starts and every few seconds (tasks.runtime.paused_queues),
so a worker started while the queue is paused never consumes it. Celery's
`cancel_consumer` / `add_consumer` broadcasts make running workers follow at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from tasks import broker, lifecycle
from tasks.exceptions import TaskLayerError
from tasks.models import Job, JobStatus, QueuePause
from tasks.observations import JobTally, Period
from tasks.record.events import JobEvent
from tasks.record.service import write as record_events
from tasks.runtime import dead_letter_queue
from tasks.runtime.heartbeat import online

logger = logging.getLogger(__name__)

#: Rates are measured over this window (the current minute's tallies included).
RATE_WINDOW = timedelta(minutes=5)
#: An answer is reused within this many seconds (every caller in this process).
CACHE_SECONDS = 1.0
#: Job rows marked REVOKED per statement after a purge.
PURGE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class QueueState:
    """One queue, as an operator (or an alert) sees it."""

    name: str
    #: Messages waiting on the broker, every priority sub-queue summed; None: the
    #: broker did not answer.
    depth: int | None
    #: Age of the oldest waiting message (its job's sent time); None when nothing waits
    #: or its job is not recorded.
    oldest_age_seconds: float | None
    #: Jobs arriving per minute over RATE_WINDOW: finished jobs plus the growth of the
    #: depth (an estimate, see `_in_rate`; equal to the out rate until measured).
    in_per_minute: float
    #: Jobs finished (any final status) per minute over RATE_WINDOW, from the tallies.
    out_per_minute: float
    #: How long a job published now would wait: the oldest waiting message's age when
    #: something waits, else the mean wait of the jobs finished in RATE_WINDOW.
    latency_seconds: float | None
    #: Seconds until the queue is empty at the current net rate (out - in; out alone
    #: until arrivals are measured); 0 when empty; None when it is not draining (no
    #: rate, or growing) or its depth is unknown.
    drain_seconds: float | None
    paused: bool
    #: Live workers consuming it now (0 while paused).
    consumers: int
    #: Live workers started to consume it (`-Q`), paused or not.
    workers: int = 0
    #: The layer's dead-letter queue: nothing consumes it by design (no alerts on it).
    dead_letter: bool = False


class QueueActionRefused(TaskLayerError):
    """The queue action makes no sense here (say, purging the dead-letter queue, whose
    messages belong to dead letters: replay or purge them as dead letters instead).
    Nothing was changed."""


# --- Reading ------------------------------------------------------------------------

_cache_lock = threading.Lock()
_cached: tuple[float, list[QueueState]] | None = None
# Per process: (monotonic time, depth) readings, for the arrival-rate estimate.
_depths: dict[str, deque[tuple[float, int]]] = {}


def queue_states(*, max_age: float = CACHE_SECONDS) -> list[QueueState]:
    """Every queue worth showing: configured, consumed by a live worker, with jobs
    finished recently, or paused; the dead-letter queue last.

    One broker round trip and four small indexed queries; an answer younger than
    `max_age` seconds is shared by every caller in this process. Never raises for an
    unreachable broker (depth is None then).
    """
    global _cached
    now = time.monotonic()
    with _cache_lock:
        if _cached is not None and now - _cached[0] < max_age:
            return _cached[1]
    states = _read()
    with _cache_lock:
        _cached = (time.monotonic(), states)
    return states


def forget() -> None:
    """Drop the shared answer (after a change, and in tests)."""
    global _cached
    with _cache_lock:
        _cached = None


def configured_queues() -> list[str]:
    conf = current_app.conf
    names = [getattr(queue, "name", str(queue)) for queue in (conf.task_queues or ())]
    names.append(conf.task_default_queue)
    return list(dict.fromkeys(name for name in names if name))


def _read() -> list[QueueState]:
    at = timezone.now()
    paused = set(QueuePause.objects.values_list("queue", flat=True))
    beats = online(at)
    tallies = _tallies(at)
    live_queues = [queue for beat in beats for queue in (beat.queues or [])]
    names = list(
        dict.fromkeys(
            [
                *configured_queues(),
                *sorted(set(live_queues) | set(tallies) | paused),
            ]
        )
    )
    names = [name for name in names if name and name != dead_letter_queue.QUEUE]
    names.append(dead_letter_queue.QUEUE)

    waiting = broker.waiting(names)
    oldest = _oldest_sent(waiting or {}, at)
    window = (at - _window_start(at)).total_seconds()
    states = []
    for name in names:
        held = waiting.get(name) if waiting is not None else None
        depth = held.depth if held is not None else None
        finished, wait_ms, waited = tallies.get(name, (0, 0, 0))
        out_rate = finished / window * 60 if window > 0 else 0.0
        in_rate, measured = _in_rate(name, depth, out_rate)
        age = oldest.get(name) if depth else None
        workers = sum(1 for beat in beats if name in (beat.queues or []))
        is_paused = name in paused
        if held is not None and held.consumers is not None:
            consumers = held.consumers  # RabbitMQ counts them itself
        else:
            consumers = 0 if is_paused else workers
        states.append(
            QueueState(
                name=name,
                depth=depth,
                oldest_age_seconds=age,
                in_per_minute=round(in_rate, 2),
                out_per_minute=round(out_rate, 2),
                latency_seconds=latency(age, wait_ms, waited),
                # Arrivals not measured yet: the drain time at the rate jobs leave.
                drain_seconds=drain_seconds(depth, in_rate if measured else 0.0, out_rate),
                paused=is_paused,
                consumers=consumers,
                workers=workers,
                dead_letter=name == dead_letter_queue.QUEUE,
            )
        )
    return states


def _window_start(at: datetime) -> datetime:
    minute = at.replace(second=0, microsecond=0)
    return minute - RATE_WINDOW + timedelta(minutes=1)


def _tallies(at: datetime) -> dict[str, tuple[int, int, int]]:
    """Per queue: jobs finished in the window, their summed wait (ms), jobs with a wait."""
    rows = (
        JobTally.objects.filter(period=Period.MINUTE, start__gte=_window_start(at))
        .values("queue")
        .annotate(count=Sum("count"), wait_ms=Sum("wait_ms_total"), waited=Sum("wait_count"))
    )
    return {
        row["queue"]: (row["count"] or 0, row["wait_ms"] or 0, row["waited"] or 0)
        for row in rows
        if row["queue"]
    }


def _oldest_sent(waiting: dict[str, broker.Waiting], at: datetime) -> dict[str, float]:
    """Age in seconds of each queue's oldest waiting job.

    Redis: the oldest message of each priority list is known by id, and those jobs'
    rows (a handful, by their unique task id) give the sent time. RabbitMQ cannot show
    a message without taking it: the queue's oldest SENT job row stands in (the
    (status, created_at) index, read from its oldest end; asked only of queues with
    messages waiting).
    """
    ids = {task_id: name for name, held in waiting.items() for task_id in held.oldest_ids}
    sent: dict[str, datetime] = {}
    if ids:
        for task_id, sent_at, created_at in Job.objects.filter(task_id__in=list(ids)).values_list(
            "task_id", "sent_at", "created_at"
        ):
            moment = sent_at or created_at
            queue = ids[task_id]
            if queue not in sent or moment < sent[queue]:
                sent[queue] = moment
    for name, held in waiting.items():
        if held.depth and not held.oldest_ids:
            row = (
                Job.objects.filter(status=JobStatus.SENT, queue=name)
                .order_by("created_at")
                .values_list("sent_at", "created_at")
                .first()
            )
            if row is not None:
                sent[name] = row[0] or row[1]
    return {name: max(0.0, (at - moment).total_seconds()) for name, moment in sent.items()}


def _in_rate(name: str, depth: int | None, out_rate: float) -> tuple[float, bool]:
    """Arrivals per minute, and whether they were measured: what left plus how much the
    depth grew, over the readings this process took within RATE_WINDOW. Nothing is
    counted as jobs arrive (no write per publish); until a second reading 10 s apart,
    the queue is shown as steady (in = out) and not measured."""
    if depth is None:
        return out_rate, False
    now = time.monotonic()
    readings = _depths.setdefault(name, deque())
    readings.append((now, depth))
    horizon = now - RATE_WINDOW.total_seconds()
    while readings and readings[0][0] < horizon:
        readings.popleft()
    first_at, first_depth = readings[0]
    if now - first_at < 10:
        return out_rate, False
    growth = (depth - first_depth) / (now - first_at) * 60
    return max(0.0, out_rate + growth), True


def latency(oldest_age: float | None, wait_ms: int, waited: int) -> float | None:
    """The oldest waiting job's age (Sidekiq's "latency"), or the recent mean wait."""
    if oldest_age is not None:
        return oldest_age
    if waited:
        return wait_ms / waited / 1000
    return None


def drain_seconds(depth: int | None, in_rate: float, out_rate: float) -> float | None:
    """Seconds to empty `depth` at the net rate (per minute); None if not draining."""
    if depth is None:
        return None
    if depth == 0:
        return 0.0
    net = out_rate - in_rate
    if net <= 0:
        return None
    return depth / net * 60


# --- Pause and resume ---------------------------------------------------------------


def paused_queues() -> set[str]:
    return set(QueuePause.objects.values_list("queue", flat=True))


def pause_queue(name: str, by: str = "") -> bool:
    """Stop every worker consuming `name`, now and after restarts; False if it was
    paused already (the broadcast is sent again anyway: harmless)."""
    try:
        with transaction.atomic():
            _, created = QueuePause.objects.get_or_create(
                queue=name, defaults={"paused_at": timezone.now(), "paused_by": by[:150]}
            )
    except IntegrityError:  # paused by someone else at the same moment
        created = False
    _broadcast("cancel_consumer", name, destination=None)
    forget()
    logger.info("Queue %s paused by %s", name, by or "?")
    return created


def resume_queue(name: str, by: str = "") -> bool:
    """Let workers consume `name` again; False if it was not paused.

    Only the live workers started to consume it (`-Q`, their heartbeat's queues) are
    told to: a worker never picks up a queue it was not meant to run.
    """
    deleted, _ = QueuePause.objects.filter(queue=name).delete()
    hosts = [beat.hostname for beat in online() if name in (beat.queues or [])]
    if hosts:
        _broadcast("add_consumer", name, destination=hosts)
    forget()
    logger.info("Queue %s resumed by %s", name, by or "?")
    return bool(deleted)


def _broadcast(command: str, queue: str, destination: Sequence[str] | None) -> None:
    """No reply awaited. A lost broadcast is made good by the workers themselves:
    they re-read the pauses every few seconds (tasks.runtime.paused_queues)."""
    try:
        getattr(current_app.control, command)(queue, destination=destination, reply=False)
    except Exception:
        logger.exception("Could not broadcast %s(%s); workers will read it shortly", command, queue)


# --- Purge --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Purged:
    queue: str
    #: Messages deleted from the broker.
    count: int
    #: Of their jobs, those whose rows were unfinished and are now REVOKED.
    revoked: int
    #: The task ids read from the deleted messages (for the audit log).
    task_ids: tuple[str, ...] = ()


def purge_preview(name: str) -> int | None:
    """How many messages a purge of `name` would delete now (None: broker unreachable)."""
    _refuse_dead_letters(name)
    found = broker.waiting([name])
    return found[name].depth if found is not None else None


def purge_queue(name: str, by: str = "") -> Purged:
    """Delete every message waiting in `name` (all priority sub-queues), and end their
    jobs REVOKED, saying so: their rows would otherwise stay SENT forever.

    Raises the broker's error if it is unreachable (nothing is changed then).
    """
    _refuse_dead_letters(name)
    count, ids = broker.purge(name)
    revoked = mark_purged(ids, name, by)
    forget()
    logger.info("Queue %s purged by %s: %d messages, %d jobs revoked", name, by, count, revoked)
    return Purged(queue=name, count=count, revoked=revoked, task_ids=tuple(ids))


def mark_purged(task_ids: Iterable[str], queue: str, by: str = "") -> int:
    """Record the unfinished jobs among `task_ids` as REVOKED (their messages are gone)."""
    ids = list(dict.fromkeys(task_ids))
    reason = f"Purged from queue {queue}" + (f" by {by}" if by else "") + ": it never ran."
    revoked = 0
    for start in range(0, len(ids), PURGE_BATCH):
        chunk = ids[start : start + PURGE_BATCH]
        rows = (
            Job.objects.filter(task_id__in=chunk)
            .exclude(status__in=lifecycle.TERMINAL)
            .values_list("task_id", "attempts")
        )
        now = timezone.now()
        events = [
            JobEvent(
                task_id=task_id,
                status=JobStatus.REVOKED,
                attempt=attempts,
                state={"finished_at": now, "error": reason},
            )
            for task_id, attempts in rows
        ]
        if events:
            record_events(events, [])
        revoked += len(events)
    return revoked


def _refuse_dead_letters(name: str) -> None:
    if name == dead_letter_queue.QUEUE:
        raise QueueActionRefused(
            "The dead-letter queue holds dead letters: replay or purge them from the "
            "Failures page, which keeps their rows true."
        )
