"""Queue depth and purge on kombu's Redis transport.

kombu stores a queue as one Redis list per priority step: the queue's own name for
step 0, then "<queue>\\x06\\x16<step>" (kombu.transport.redis `Channel._q_for_pri`,
`sep`, `priority_steps` = [0, 3, 6, 9] unless the transport options say otherwise),
each behind the transport's `global_keyprefix`. Producers LPUSH, workers BRPOP the
lists in priority order, so index -1 of each list is its oldest message.

The client here is this module's own, with short timeouts and no retries: a dashboard
or a health check asks and moves on, where kombu's client would wait and retry.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect
from collections.abc import Sequence
from typing import Any

import redis
from celery import current_app
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as KombuChannel

from tasks.broker import Waiting

#: Seconds to connect and to wait for an answer before the broker counts as unreachable.
TIMEOUT = 0.5

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def client(url: str) -> redis.Redis:
    """One client per broker URL per process (it keeps a pool; thread-safe)."""
    with _lock:
        found = _clients.get(url)
        if found is None:
            if url.startswith("redis+socket://"):
                url = "unix://" + url[len("redis+socket://") :]
            found = redis.Redis.from_url(
                url,
                socket_connect_timeout=TIMEOUT,
                socket_timeout=TIMEOUT,
                retry_on_timeout=False,
                retry=None,
            )
            _clients[url] = found
        return found


def _options() -> dict[str, Any]:
    return dict(current_app.conf.broker_transport_options or {})


def priority_steps() -> list[int]:
    return list(_options().get("priority_steps") or PRIORITY_STEPS)


def keys(queue: str) -> list[str]:
    """The Redis lists of `queue`, in the order workers consume them."""
    prefix = str(_options().get("global_keyprefix") or "")
    sep = KombuChannel.sep
    names = []
    steps = priority_steps()
    for step in steps:
        # As kombu's Channel.priority(): each step stands for itself.
        step = steps[bisect(steps, step) - 1]
        names.append(f"{prefix}{queue}{sep}{step}" if step else f"{prefix}{queue}")
    return list(dict.fromkeys(names))


def task_id(raw: bytes | str | None) -> str | None:
    """The task id in a kombu envelope (protocol 2 keeps it in the headers)."""
    if raw is None:
        return None
    try:
        envelope = json.loads(raw)
        found = (envelope.get("headers") or {}).get("id")
    except (ValueError, AttributeError):
        return None
    return str(found) if found else None


def waiting(url: str, queues: Sequence[str]) -> dict[str, Waiting]:
    """Depth and oldest message of every queue: one pipeline, one round trip."""
    layout = {queue: keys(queue) for queue in queues}
    pipe = client(url).pipeline(transaction=False)
    for names in layout.values():
        for name in names:
            pipe.llen(name)
            pipe.lindex(name, -1)
    answers = iter(pipe.execute())
    found: dict[str, Waiting] = {}
    for queue, names in layout.items():
        depth = 0
        oldest: list[str] = []
        for _ in names:
            length, tail = next(answers), next(answers)
            depth += int(length or 0)
            tail_id = task_id(tail)
            if tail_id:
                oldest.append(tail_id)
        found[queue] = Waiting(depth=depth, oldest_ids=tuple(oldest))
    return found


def purge(url: str, queue: str) -> tuple[int, list[str]]:
    """Take every message off `queue`'s lists in one transaction: (count, task ids).

    Read and deleted in one MULTI, so a message published meanwhile is either counted
    and returned or left waiting, never deleted unseen.
    """
    names = keys(queue)
    pipe = client(url).pipeline(transaction=True)
    for name in names:
        pipe.lrange(name, 0, -1)
    pipe.delete(*names)
    answers = pipe.execute()
    messages = [raw for listing in answers[: len(names)] for raw in listing]
    ids = [found for found in (task_id(raw) for raw in messages) if found]
    return len(messages), ids
