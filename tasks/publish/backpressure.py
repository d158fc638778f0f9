"""Backpressure: refuse new jobs for a queue that already holds too many messages.

An unbounded queue turns an overload into an outage later: Redis runs out of memory,
or the backlog takes hours to drain while users wait for jobs that no longer matter.
With `TASKS_QUEUE_MAX_LENGTH = {"default": 10000}`, `.delay()` on a full `default`
raises `QueueFull` before anything is recorded (inside a transaction too: the check
comes before the row), so the caller can answer "busy, try later" and nothing is
dropped silently. Queues not listed are unlimited, and then nothing here runs.

Depth is what waits in the queue: on Redis the list plus kombu's priority sub-lists
(one pipelined round trip, kombu's `Channel._size`); on RabbitMQ the `message_count`
of a passive `queue_declare`; plus the jobs committed in transactions that no relay
has published yet (tasks.publish.relay), counted on their partial index up to the limit.
Messages a worker has reserved (prefetched, waiting for an ETA) and jobs held in the
outbox for a far ETA do not count; retries and the outbox's own publishes are never
refused (they were accepted once already).

The depth is cached per process for TASKS_QUEUE_DEPTH_CACHE seconds (default 1) and
counted up locally on each publish, so a busy web process asks the broker once a
second per queue instead of on every `.delay()`. The limit is a soft one: processes do
not see each other's last second of publishes, so a burst can overshoot it by that
much. A broker that cannot be asked (down) does not block the publish: the outbox or
BrokerUnavailable handle that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from django.core.signals import setting_changed
from kombu.exceptions import ChannelError

from tasks import conf
from tasks.conf import layer_settings
from tasks.exceptions import QueueFull

logger = logging.getLogger(__name__)

_lock = threading.Lock()
# (broker url, queue) -> (monotonic time it was measured, depth)
_depths: dict[tuple[str, str], tuple[float, int]] = {}
_limits: Mapping[str, int] | None = None
_cache_seconds: float = 1.0


def limits() -> Mapping[str, int]:
    """The configured maximum lengths (read once; reset when settings change in tests)."""
    global _limits, _cache_seconds
    if _limits is None:
        config = layer_settings()
        _cache_seconds = config.queue_depth_cache
        _limits = config.queue_max_length
    return _limits


def check(app: Any, queue: str) -> None:
    """Raise QueueFull if `queue` is at its configured maximum length."""
    limit = limits().get(queue)
    if limit is None:
        return
    depth = _cached_depth(app, queue)
    if depth is not None and depth >= limit:
        raise QueueFull(
            f"Queue {queue!r} holds {depth} messages, at its limit of {limit} "
            "(TASKS_QUEUE_MAX_LENGTH); the job was not recorded or published. Try again "
            "later, or add workers for this queue, or raise the limit."
        )


def note_published(app: Any, queue: str) -> None:
    """Count a publish into the cached depth, so a burst sees itself."""
    if queue not in limits():
        return
    key = (str(app.conf.broker_url), queue)
    with _lock:
        cached = _depths.get(key)
        if cached is not None:
            _depths[key] = (cached[0], cached[1] + 1)


def depth(app: Any, queue: str) -> int:
    """Messages waiting in `queue` right now (one broker round trip)."""
    with app.pool.acquire(block=True) as conn:
        conn.ensure_connection(max_retries=1)
        channel = conn.default_channel
        size = getattr(channel, "_size", None)
        if size is not None:  # kombu's virtual transports (Redis): every priority list
            return int(size(queue))
        try:
            with conn.channel() as probe:  # a failed passive declare closes its channel
                return int(probe.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError:
            return 0  # not declared yet: empty


def waiting_for_relay(queue: str, up_to: int) -> int:
    """Jobs of `queue` committed but not published yet (at most `up_to` counted)."""
    # Not at the top: the task class imports this module, and Celery may build it
    # before Django's app registry (models) is ready.
    from tasks.models import Job

    return Job.objects.filter(publish_due_at__isnull=False, queue=queue)[:up_to].count()


def _cached_depth(app: Any, queue: str) -> int | None:
    key = (str(app.conf.broker_url), queue)
    now = time.monotonic()
    cached = _depths.get(key)
    if cached is not None and now - cached[0] < _cache_seconds:
        return cached[1]
    try:
        measured = depth(app, queue) + waiting_for_relay(queue, limits()[queue])
    except Exception as exc:
        logger.warning("Could not measure the depth of queue %r: %s", queue, exc)
        return None
    with _lock:
        _depths[key] = (now, measured)
    return measured


def reset(setting: str = "", **_: Any) -> None:
    """Forget limits and cached depths (settings changed)."""
    global _limits
    if not setting or setting.startswith(conf.PREFIX):
        with _lock:
            _limits = None
            _depths.clear()


def connect() -> None:
    setting_changed.connect(reset, weak=False, dispatch_uid="tasks.publish.backpressure.settings")
