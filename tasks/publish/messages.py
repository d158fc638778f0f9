"""One message to publish, and publishing it: what the relay and the outbox share.

`Entry` is everything `send_task` needs (name, arguments, apply_async options as JSON);
`send` publishes it with the bounded retry policy; `CONNECTION_ERRORS` is what a
publish raises when the broker does not answer.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import current_app
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from kombu import Exchange, Queue
from kombu.exceptions import OperationalError

from tasks.models import OutboxMessage
from tasks.publish.config import settings_now

try:  # the transport's own errors, when it raises them unwrapped
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    _REDIS_ERRORS: tuple[type[BaseException], ...] = (_RedisConnectionError, _RedisTimeoutError)
except ImportError:  # pragma: no cover
    _REDIS_ERRORS = ()

#: What a publish raises when the broker is unreachable (kombu wraps most of them in
#: OperationalError; a few paths let the transport's or the socket's through).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    *_REDIS_ERRORS,
)


class _OptionsEncoder(DjangoJSONEncoder):
    """apply_async options as JSON: datetimes as ISO 8601, queues and exchanges by name,
    signatures (dicts already) as they are."""

    def default(self, o: Any) -> Any:
        if isinstance(o, (Queue, Exchange)):
            return o.name
        return super().default(o)


def encode_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as they will be stored, so the hook publishes exactly what a reconciler
    would. Raises TypeError for an option that JSON cannot hold."""
    decoded: dict[str, Any] = json.loads(json.dumps(dict(options), cls=_OptionsEncoder))
    return decoded


def decode_options(options: Mapping[str, Any]) -> dict[str, Any]:
    decoded = dict(options)
    for name in ("eta", "expires"):
        value = decoded.get(name)
        if isinstance(value, str):
            decoded[name] = parse_datetime(value) or value
    return decoded


@dataclass(slots=True)
class Entry:
    """One message to publish: what an OutboxMessage row holds, in memory."""

    task_id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    claimed_at: datetime | None = None
    due_at: datetime = field(default_factory=timezone.now)

    @classmethod
    def from_row(cls, row: OutboxMessage) -> Entry:
        return cls(
            row.task_id, row.name, row.args, row.kwargs, row.options, row.claimed_at, row.due_at
        )

    def as_row(self, created_at: datetime) -> dict[str, Any]:
        """The row's columns (not attempts and last_error)."""
        return {
            "task_id": self.task_id,
            "name": self.name,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
            "due_at": self.due_at,
            "claimed_at": self.claimed_at,
            "created_at": created_at,
        }

    def insert(self, error: str = "") -> None:
        """Write the row (in the current transaction, if any).

        A retry reuses its job's task id, and the row of the job's first publish may
        still wait for its batched delete (`_Deletions`): the retry's row replaces it,
        with a claim of its own, so that delete no longer matches it.
        """
        row = self.as_row(timezone.now())
        OutboxMessage.objects.update_or_create(
            task_id=row.pop("task_id"),
            defaults={**row, "attempts": 1 if error else 0, "last_error": error[:2000]},
        )


def send(entry: Entry, app: Any = None, *, add_to_parent: bool = True) -> None:
    """Publish one message, giving up after the bounded retry policy."""
    app = app or current_app
    options = decode_options(entry.options)
    options.setdefault("retry", True)
    options.setdefault("retry_policy", settings_now().retry_policy)
    app.send_task(
        entry.name,
        entry.args,
        entry.kwargs,
        task_id=entry.task_id,
        add_to_parent=add_to_parent,
        **options,
    )
