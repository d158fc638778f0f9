"""Evidence that the Redis broker lost its data, and what it still holds.

The marker: a key the layer writes into the broker's Redis (`MARKER_KEY`, a random token
and when it was written). It lives as long as the broker's data does: through a restart
only if Redis persists (AOF or RDB), never through a FLUSHALL or a failover to an empty
replica. A marker that a process had seen and that is now missing is evidence that the
data is gone, where a new `run_id` is not (a restart with AOF changes it too, and loses
at most its last writes: looked into apart, tasks.runtime.broker_recovery); once the
data is known gone, the run_id tells whether the broker restarted (new run_id) or was
flushed (same). The check is one pipelined GET and INFO (tasks.runtime.broker_watch,
every ~2 s beside each worker); nothing on a job's path.

What the broker still holds: every task id in the queue lists (each priority sub-list
included) and in kombu's unacknowledged hash (`unacked`: the messages workers took and
have not acknowledged, ETA jobs held in a worker's memory among them). Read only after a
loss or a restart, in chunks (SCAN, LRANGE, HSCAN), so nothing the broker holds is published twice.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from celery import current_app
from django.utils import timezone

from tasks.broker import redis_lists

MARKER_KEY = "tasks:broker-marker"
#: Entries read per command while listing what the broker holds.
CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class Marker:
    token: str
    written_at: datetime | None

    def encode(self) -> str:
        when = self.written_at.isoformat() if self.written_at else ""
        return f"{self.token} {when}"

    @classmethod
    def decode(cls, raw: bytes | str) -> Marker:
        text = raw.decode() if isinstance(raw, bytes) else raw
        token, _, when = text.partition(" ")
        try:
            written_at = datetime.fromisoformat(when) if when else None
        except ValueError:
            written_at = None
        return cls(token, written_at)

    @classmethod
    def new(cls) -> Marker:
        return cls(secrets.token_hex(8), timezone.now())


def _prefix() -> str:
    return str((current_app.conf.broker_transport_options or {}).get("global_keyprefix") or "")


def read_marker_and_run_id(url: str) -> tuple[Marker | None, str]:
    """The broker's marker (None when it has none) and its run_id (new at every start,
    "" when INFO is refused), in one round trip. Raises redis errors when down."""
    pipe = redis_lists.client(url).pipeline(transaction=False)
    pipe.get(_prefix() + MARKER_KEY)
    pipe.info("server")
    raw, info = pipe.execute(raise_on_error=False)
    if isinstance(raw, Exception):
        raise raw
    marker = None if raw is None else Marker.decode(raw)
    # A server that refuses INFO (an ACL, a proxy) still has its marker read: the run_id
    # is "" then, and only restarts that keep the data go unnoticed.
    run_id = "" if isinstance(info, Exception) else str(info.get("run_id") or "")
    return marker, run_id


def claim_marker(url: str, marker: Marker) -> bool:
    """Write `marker` unless one is there (SET NX): True for the one process that wrote it."""
    return bool(redis_lists.client(url).set(_prefix() + MARKER_KEY, marker.encode(), nx=True))


def server(url: str) -> tuple[str, datetime | None]:
    """The broker's run_id (new at every start) and when its process started, by its own
    clock (TIME minus the uptime, to the second)."""
    pipe = redis_lists.client(url).pipeline(transaction=False)
    pipe.time()
    pipe.info("server")
    (seconds, micros), info = pipe.execute()
    uptime = info.get("uptime_in_seconds")
    if uptime is None:
        return str(info.get("run_id") or ""), None
    now = datetime.fromtimestamp(int(seconds) + int(micros) / 1e6, tz=UTC)
    return str(info.get("run_id") or ""), (now - timedelta(seconds=int(uptime))).replace(
        microsecond=0
    )


def address(url: str) -> str:
    """The broker's address without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username:
        host = f"{parts.username}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _envelope_id(raw: Any) -> str | None:
    return redis_lists.task_id(raw)


def _unacked_id(raw: bytes | str) -> str | None:
    """An entry of kombu's `unacked` hash: JSON [message, exchange, routing_key]."""
    try:
        entry = json.loads(raw)
        message = entry[0] if isinstance(entry, list) and entry else None
        found = (message.get("headers") or {}).get("id") if isinstance(message, dict) else None
    except (ValueError, AttributeError, TypeError):
        return None
    return str(found) if found else None


def held_task_ids(url: str) -> set[str]:
    """Every task id the broker holds: queue lists and the unacknowledged hash.

    Every list is read, whatever its queue: a loss is rare, and a queue whose name the
    reading process does not know still holds its messages.
    """
    return {task_id for task_id, _ in holdings(url)}


def holdings(url: str) -> Iterator[tuple[str, str]]:
    """(task id, the key holding its message) for every message the broker holds: each
    list (queues, priority sub-lists, kombu's `ae.undeliver`) and the unacknowledged hash."""
    client = redis_lists.client(url)
    unacked = _prefix() + "unacked"
    for name in _keys(client):
        kind = client.type(name)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "list":
            for task_id in _list_ids(client, name):
                yield task_id, text(name)
        elif kind == "hash" and text(name) == unacked:
            for _, raw in client.hscan_iter(name, count=CHUNK):
                found = _unacked_id(raw)
                if found:
                    yield found, unacked


def _keys(client: redis.Redis) -> Iterator[bytes | str]:
    yield from client.scan_iter(count=CHUNK)


def text(value: bytes | str | None) -> str:
    """A Redis reply as text ("" for none)."""
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _list_ids(client: redis.Redis, name: bytes | str) -> Iterator[str]:
    start = 0
    while True:
        chunk = client.lrange(name, start, start + CHUNK - 1)
        for raw in chunk:
            task_id = _envelope_id(raw)
            if task_id:
                yield task_id
        if len(chunk) < CHUNK:
            return
        start += CHUNK
