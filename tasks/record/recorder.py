"""The recorder: reads recorded events from the Redis streams and writes them in batches.

Every worker starts one as a child process (tasks.runtime.worker_steps), which also runs the
worker's relay (tasks.publish.relay) in a thread. Recorders form one
Redis consumer group per stream, so several workers share the work. Each batch starts
with a fair share of every stream (tasks.record.sinks.STREAMS: the workers' events, then the
publishers'), and the room left after WINDOW goes to them in that order: a backlog of
SENT events from a burst of enqueues is written alongside the workers' events, so a
finished job's row does not wait for the whole backlog (with one stream, a burst of
enqueues put seconds between a job's finish and its row). An entry is acknowledged and
deleted only after its batch is committed; entries a dead recorder had read but not
committed are claimed by another after `CLAIM_IDLE_MS`. Writing the same events twice
is harmless (tasks.record.service), so this gives at-least-once writes without duplicates.
A database outage stops the recorder, not the workers: events wait in Redis and the
recorder retries with backoff until the database answers.

Run by `python -m tasks.runtime.recorder_and_relay` beside every worker.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import redis
from django.db import DatabaseError, close_old_connections, connection

from tasks.backoff import RetryPolicy
from tasks.record import service, sinks, storable

logger = logging.getLogger("tasks.record.recorder")

GROUP = "recorders"
BATCH = 1000  # entries per batch, at most
# Payload bytes per batch, about 2,000 events. What bounds a batch's memory: an entry
# from a publisher holds up to sinks.MAX_BUFFER events, so BATCH entries of a backlog of
# enqueues could be 500,000 events in one batch, and the process keeps the memory of
# its biggest batch. (One-off prepared statements are the other way a recorder's memory
# grows: see tasks.record.upsert.STATEMENT_ROWS.)
BATCH_BYTES = 1 << 20
#: A failed write is tried again after 0.1 s, 0.2 s, 0.4 s ... at most 5 s.
WRITE_RETRY = RetryPolicy(base=0.1, cap=5.0, jitter=False)
FIRST_CHUNK = 8  # entries per stream in the first read of a batch; chunks double after
CLAIM_CHUNK = 32  # abandoned entries claimed per stream and step
BLOCK_MS = 100
WINDOW = 0.1  # seconds a batch may wait for more entries once one has arrived
CLAIM_IDLE_MS = 15_000
CLAIM_EVERY = 5.0  # seconds between looks for abandoned entries

#: (stream, entry id, fields), as read from one of the streams.
Entry = tuple[bytes, bytes, dict[bytes, bytes]]


class Recorder:
    def __init__(
        self, url: str, consumer: str | None = None, streams: Sequence[str] | None = None
    ) -> None:
        self.streams = tuple(streams or sinks.STREAMS)
        self.client = redis.Redis.from_url(url)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._last_claim = 0.0

    def ensure_group(self) -> None:
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def run(self, should_stop: Callable[[], bool]) -> None:
        group_ready = False
        while not should_stop():
            try:
                if not group_ready:
                    self.ensure_group()
                    group_ready = True
                self.step()
            except redis.ResponseError as exc:
                # A Redis restarted without persistence lost the stream and its group.
                if "NOGROUP" not in str(exc):
                    raise
                logger.warning("Event stream or consumer group missing; recreating it")
                group_ready = False
            except redis.RedisError as exc:
                logger.warning("Redis unavailable (%s); retrying", exc)
                time.sleep(1)
            except Exception:
                # Unacknowledged entries stay in the stream; keep the loop alive.
                logger.exception("Recording a batch failed; retrying")
                time.sleep(1)
        # Drain what is already there before exiting (a clean worker shutdown).
        try:
            while self.step(block=False):
                pass
        except redis.RedisError as exc:
            logger.warning("Could not drain the event stream at exit (%s)", exc)

    def step(self, block: bool = True) -> int:
        entries = self._claim_abandoned() or self._first_read(block)
        if not entries:
            return 0
        if block:
            entries += self._gather_more(BATCH - len(entries), BATCH_BYTES - _size(entries))
        ids: dict[bytes, list[bytes]] = defaultdict(list)
        jobs, results = [], []
        for stream, entry_id, fields in entries:
            ids[stream].append(entry_id)
            try:
                entry_jobs, entry_results = sinks.decode(fields[b"e"])
            except Exception:
                logger.exception("Dropping malformed event entry %s", entry_id)
                continue
            jobs.extend(entry_jobs)
            results.extend(entry_results)
        self._write_until_done(service.write, jobs, results)
        with self.client.pipeline(transaction=False) as pipe:
            for stream, stream_ids in ids.items():
                pipe.xack(stream, GROUP, *stream_ids)
                pipe.xdel(stream, *stream_ids)
            pipe.execute()
        return len(entries)

    def _read(
        self,
        block: bool,
        count: int | None = None,
        block_ms: int = BLOCK_MS,
        streams: Sequence[str] | None = None,
    ) -> list[Entry]:
        """New entries, up to `count` from each of `streams`; by default a fair share of
        BATCH from every stream. Blocks until one arrives if asked."""
        streams = streams or self.streams
        if count is None:
            count = max(1, BATCH // len(streams))
        # redis-py types replies loosely; XREADGROUP's is [(stream, [(id, fields)])].
        response: Any = self.client.xreadgroup(
            GROUP,
            self.consumer,
            {stream: ">" for stream in streams},
            count=count,
            block=block_ms if block else None,
        )
        return [
            (name, entry_id, fields)
            for name, stream_entries in response or ()
            for entry_id, fields in stream_entries
        ]

    def _first_read(self, block: bool) -> list[Entry]:
        """A batch's start: a fair share of BATCH and of BATCH_BYTES from every stream.

        The (blocking) read takes a few entries of each stream; a stream that had more
        is read on in chunks up to its share.
        """
        share = max(1, BATCH // len(self.streams))
        budget = BATCH_BYTES // len(self.streams)
        first = min(FIRST_CHUNK, share)
        entries = self._read(block, count=first)
        for stream in self.streams:
            name = stream.encode()
            got = [entry for entry in entries if entry[0] == name]
            if len(got) == first:
                entries += self._read_within(stream, share - first, budget - _size(got))
        return entries

    def _read_within(self, stream: str, room: int, budget: int) -> list[Entry]:
        """Up to `room` new entries of `stream`, stopping once their payloads pass
        `budget` bytes. Read in chunks that double from FIRST_CHUNK: a chunk can pass
        the budget by what its entries hold, never by a whole BATCH."""
        read: list[Entry] = []
        count = min(FIRST_CHUNK, room)
        while count > 0 and budget > 0:
            chunk = self._read(False, count=count, streams=(stream,))
            read += chunk
            room -= len(chunk)
            budget -= _size(chunk)
            if len(chunk) < count:
                break
            count = min(count * 2, room)
        return read

    def _gather_more(self, room: int, budget: int) -> list[Entry]:
        """Wait WINDOW, then take what has arrived meanwhile: few, big batches.

        Under load every pool child adds an entry per task; written one by one, each
        would cost a transaction (and read one by one, a round trip). WINDOW bounds what
        this adds to the visibility lag. The room goes to the streams in their order.
        """
        if room <= 0 or budget <= 0:
            return []
        time.sleep(WINDOW)
        gathered: list[Entry] = []
        for stream in self.streams:
            if room <= 0 or budget <= 0:
                break
            more = self._read_within(stream, room, budget)
            gathered += more
            room -= len(more)
            budget -= _size(more)
        return gathered

    def _claim_abandoned(self) -> list[Entry]:
        now = time.monotonic()
        if now - self._last_claim < CLAIM_EVERY:
            return []
        self._last_claim = now
        claimed: list[Entry] = []
        more_left = False
        for stream in self.streams:
            # Redis 6.2 answers [cursor, entries], Redis 7 adds the deleted ids.
            entries = self.client.xautoclaim(
                stream, GROUP, self.consumer, min_idle_time=CLAIM_IDLE_MS, count=CLAIM_CHUNK
            )[1]
            more_left = more_left or len(entries) == CLAIM_CHUNK
            name = stream.encode()
            claimed += [(name, entry_id, fields) for entry_id, fields in entries if fields]
        if more_left:
            self._last_claim = 0.0  # a dead recorder's backlog: claim on at the next step
        return claimed

    @staticmethod
    def _write_until_done(write: Callable[..., None], jobs: list, results: list) -> None:
        failures = 0
        while True:
            try:
                # A value the database refuses is not retried (tasks.record.storable).
                storable.write_or_apart(write, jobs, results)
                return
            except DatabaseError as exc:
                delay = WRITE_RETRY.ceiling(failures)
                failures += 1
                logger.warning("Database write failed (%s); retrying in %.1fs", exc, delay)
                connection.close()
                time.sleep(delay)
            finally:
                close_old_connections()


def _size(entries: Sequence[Entry]) -> int:
    """Payload bytes of these entries: what a batch of them will cost to decode and hold."""
    return sum(len(fields.get(b"e", b"")) for _, _, fields in entries)
