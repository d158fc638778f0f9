"""Jobs with events still waiting in the event streams: their rows are behind.

The recorder deletes each stream entry once its events are in the database
(tasks.record.recorder), so whatever the streams hold is not on any row yet: a job
whose SUCCESS waits there still reads SENT or RECEIVED. The broker-restart look
(tasks.runtime.broker_recovery) must not take such a row's state for the job's and
publish again a job that already ran. Read only then, in chunks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import redis

from tasks.record.sinks import PUBLISHED_STREAM, STREAM, stream_url

#: Entries read per command.
CHUNK = 1_000
#: Seconds to wait for the stream's Redis (a look must not hang on a server that stalls).
TIMEOUT = 5.0


def unrecorded_task_ids() -> set[str]:
    """Every task id named by an event the streams hold (none when events go straight to
    the database). Raises redis errors when the stream's Redis does not answer."""
    url = stream_url()
    if url is None:
        return set()
    client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
    try:
        found: set[str] = set()
        for stream in (STREAM, PUBLISHED_STREAM):
            for payload in _payloads(client, stream):
                found.update(_task_ids(payload))
        return found
    finally:
        client.close()


def _payloads(client: redis.Redis, stream: str) -> Iterator[bytes | str]:
    start = "-"
    while True:
        entries = client.xrange(stream, min=start, max="+", count=CHUNK) or []
        for _, fields in entries:
            payload = (fields or {}).get(b"e")
            if payload:
                yield payload
        if len(entries) < CHUNK:
            return
        last = entries[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else str(last))


def _task_ids(payload: bytes | str) -> Iterator[str]:
    """The task ids of one entry's events; nothing for an entry that does not decode (the
    recorder sets those aside on its own)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return
    if not isinstance(data, dict):
        return
    for kind in ("j", "r"):
        for event in data.get(kind) or ():
            if isinstance(event, dict) and event.get("t"):
                yield str(event["t"])
