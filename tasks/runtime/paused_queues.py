"""A paused queue stays paused for workers that start (or reconnect) while it is.

The pause itself is a `QueuePause` row (tasks.operations.queues); running workers get
Celery's `cancel_consumer` broadcast at once. A broadcast reaches only the workers
listening at that moment, so each worker also follows the rows:

- `start` of this consumer step runs before the consumer's event loop takes a message
  (and again after a broker reconnection): paused queues are dropped from the worker's
  queues before it consumes anything. The worker's `-Q` list (kept by the heartbeat,
  which the recorder process writes) is left as it was, so a resume knows who to tell.
- Every REFRESH_SECONDS a thread re-reads the rows (off the event loop, which must not
  wait for the database), and the timer applies them on the loop: a pause broadcast a
  restarting worker missed still stops it, and a queue this worker saw paused and then
  resumed is consumed again even if the `add_consumer` broadcast was lost. A queue an
  operator cancelled by hand (`celery control cancel_consumer`) is left alone.

The main process only reads the database, and closes its connection before pool
processes fork.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from django.db import connection

from tasks.models import QueuePause
from tasks.runtime.latest_reading import LatestReading

logger = logging.getLogger(__name__)

#: Seconds between two reads of the paused queues.
REFRESH_SECONDS = 5.0


def paused_names() -> set[str]:
    return set(QueuePause.objects.values_list("queue", flat=True))


def _holds(consumer: Any, name: str) -> bool:
    """Whether the task consumer consumes `name` or will when it starts consuming."""
    return bool(consumer.consuming_from(name)) or any(q.name == name for q in consumer.queues)


class PausedQueues(bootsteps.StartStopStep):
    """Consumer step: the worker's consumed queues follow the `QueuePause` rows.

    Added by name in tasks.runtime.worker_steps.connect()."""

    label = "Paused queues"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._refresher: LatestReading[set[str]] | None = None
        self._tref: Any = None
        #: The queues this worker was started to consume (`-Q`), read once.
        self._own: set[str] | None = None
        #: Queues this worker has seen paused (a later resume is applied here too).
        self._seen_paused: set[str] = set()

    def start(self, c: Any) -> None:
        queues = c.app.amqp.queues
        if self._own is None:
            self._own = set(queues.consume_from)
        try:
            paused = paused_names()
        except Exception:
            logger.exception("Could not read the paused queues at start; retrying shortly")
            paused = set()
        finally:
            # Pool processes forked later must not share this connection.
            connection.close()
        self._apply(c, paused)
        self._refresher = LatestReading(
            "tasks-paused-queues", REFRESH_SECONDS, paused_names, "the paused queues"
        )
        self._refresher.start()
        self._tref = c.timer.call_repeatedly(REFRESH_SECONDS, self._tick, (c,), priority=10)

    def _tick(self, c: Any) -> None:
        try:
            names = self._refresher.take() if self._refresher else None
            if names is not None:
                self._apply(c, names)
        except Exception:
            logger.exception("Applying paused queues failed; will retry")

    def _apply(self, c: Any, paused: set[str]) -> None:
        own = self._own or set()
        queues = c.app.amqp.queues
        consumer = getattr(c, "task_consumer", None)
        for name in sorted(paused & own):
            self._seen_paused.add(name)
            if consumer is not None and _holds(consumer, name):
                # Also drops it from app.amqp.queues. A consumer built but not consuming
                # yet (this step may run between the Tasks step's creating it and the
                # event loop's consume()) holds the queue too: it would start on it.
                c.cancel_task_queue(name)
            elif name in queues.consume_from:
                queues.deselect(name)
                logger.info("Queue %s is paused: not consuming it", name)
        for name in sorted((self._seen_paused & own) - paused):
            self._seen_paused.discard(name)
            if consumer is not None:
                if not consumer.consuming_from(name):
                    c.add_task_queue(name)  # selects it again, as add_consumer does
            elif name in queues:
                queues.select_add(queues[name])

    def stop(self, c: Any) -> None:
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None
        if self._refresher is not None:
            self._refresher.stop()
            self._refresher = None

    shutdown = stop
