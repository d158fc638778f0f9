"""TrackedTask: the base class of every task in the app (`Celery(task_cls=...)`).

What it adds to Celery's Task, each owned by its own module:

- publishing (`apply_async`): inside a transaction, the PENDING row is written in the
  caller's transaction and a worker's relay publishes it after the commit (a rollback
  leaves nothing; the caller gets the id at once, unlike `delay_on_commit`; a broker that
  is down then only delays it: tasks.publish.relay). Outside a transaction it publishes at once
  and raises BrokerUnavailable when the broker is down. Far-future
  ETAs wait in the database; full queues raise QueueFull (tasks.publish.backpressure);
  `unique_key` returns the pending job's handle (tasks.publish.uniqueness).
- retries: a countdown from the task's backoff policy (tasks.runtime.retry_policy), options
  checked when the task is decorated (tasks.options).
- `set_progress` (tasks.runtime.progress) and `is_cancelled` (tasks.runtime.cancellation).

A bad argument raises `UnserializableArguments` at the call site in both cases: inside
a transaction it is checked before the row is written (the message is only encoded
after commit); outside, kombu's own encoding error is re-raised with a clear message.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from celery import Task
from celery.result import AsyncResult
from celery.utils import uuid
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from kombu.exceptions import EncodeError
from kombu.serialization import dumps

from tasks import backoff, correlation
from tasks.backoff import RetryPolicy
from tasks.exceptions import BrokerUnavailable, UnserializableArguments
from tasks.publish import backpressure, holds, messages, outbox, uniqueness, with_commit
from tasks.record import translate
from tasks.record.service import record_now, write_in_transaction
from tasks.runtime import cancellation, progress

logger = logging.getLogger(__name__)


class TrackedTask(Task):
    """A Celery Task whose publishing respects the caller's database transaction."""

    #: Publish on commit when called inside `transaction.atomic`. Set False on a task
    #: that must be published even if the caller's transaction rolls back.
    publish_on_commit: bool = True

    #: At most one pending or running job per key: argument names (a tuple of str) or
    #: a callable taking the call's (args, kwargs) and returning a string. See
    #: tasks.publish.uniqueness.
    unique_key: Any = None
    #: Seconds after which a uniqueness key lapses even if its job never finished.
    unique_ttl: int = 3600

    #: How long to wait before a retry that names no countdown or eta: the autoretry
    #: of `autoretry_for` exceptions, `self.retry(exc=...)`, a worker-lost retry. Set
    #: from the `retry_backoff*` options (tasks.options); None means Celery's fixed
    #: `default_retry_delay`.
    retry_policy: RetryPolicy | None = RetryPolicy()
    retry_backoff_base: float = backoff.DEFAULT_BASE
    #: Celery waits this long before re-running a job whose pool process died (see
    #: CELERY_TASK_RETRY_ON_WORKER_LOST); Celery's 180 s would leave it idle for no
    #: reason. Retries that name no countdown use `retry_policy` instead.
    default_retry_delay = 1
    #: A soft time limit raises SoftTimeLimitExceeded in the task; retried by default.
    retry_on_soft_time_limit: bool = True
    #: Park the message in the dead-letter queue on a final failure; None = the
    #: TASKS_DEAD_LETTER setting (on by default).
    dead_letter: bool | None = None

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: Exception | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        """Celery's retry, with the countdown taken from the task's backoff policy."""
        if eta is None and countdown is None and self.retry_policy is not None:
            countdown = self.retry_policy.delay(self.request.retries or 0)
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Publish the job; inside `transaction.atomic`, in step with the transaction.

        - In a transaction: the PENDING row, which carries the message, is written in
          the caller's transaction; a worker's relay publishes it after commit
          (tasks.publish.relay), later if the broker is down then. A `unique_key` job goes
          through the outbox table and its own commit hook instead (tasks.publish.outbox).
        - Outside one: published at once; a broker that does not answer raises
          `BrokerUnavailable` and nothing is recorded.
        - An ETA further than TASKS_HOLD_AFTER away: held in the outbox, published
          shortly before it is due (the Redis visibility-timeout trap).
        - A retry's re-publish that fails: kept in the outbox, never lost.
        - A full queue (TASKS_QUEUE_MAX_LENGTH): `QueueFull`, nothing recorded.
        - `unique_key`: a second job with the key of an unfinished one returns that
          job's handle (tasks.publish.uniqueness).
        """
        if options.get("retries"):
            return self._republish_retry(
                args, kwargs, task_id, producer, link, link_error, shadow, options
            )
        deferred = self._defer_to_commit(options)
        due_at = None
        if options.get("countdown") or options.get("eta"):
            options = _with_absolute_eta(options)
            due_at = holds.hold_until(options.get("eta"), timezone.now())
        if not deferred and due_at is None and self.unique_key is None:
            # Celery's own publish; the only additions are dict lookups (and the
            # queue limit when one is configured).
            if backpressure.limits():
                backpressure.check(self.app, self._queue_name(args, kwargs, options))
            return self._publish_now(
                args, kwargs, task_id, producer, link, link_error, shadow, options
            )
        return self._publish_through_outbox(
            args, kwargs, task_id, producer, link, link_error, shadow, options, deferred, due_at
        )

    def set_progress(self, percent: float, message: str = "") -> bool:
        """Report how far the running job is (0-100) and what it is doing."""
        return progress.set_progress(self, percent, message)

    def is_cancelled(self) -> bool:
        """True once an operator asked to cancel this job.

        Call it often (each loop iteration, each step): it reads the database at most
        every 0.5 s, and once it has returned True the job ends REVOKED however the
        body then ends (see `__call__`), so return or raise as is convenient.
        """
        return cancellation.is_cancelled(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the body; a job that observed its cancellation ends REVOKED.

        With a custom `__call__`, Celery's tracer calls the task instead of `run`
        (celery/app/trace.py, build_tracer); in a worker `super().__call__` is Celery's
        stack-protected call, which runs `run` under the request the tracer pushed. The
        common path adds one call and one dict lookup: the recording service and the
        result backend are touched only after `is_cancelled()` returned True.
        """
        try:
            retval = super().__call__(*args, **kwargs)
        except Exception:
            if cancellation.observed(self):
                cancellation.stop_as_revoked(self)
            raise
        if cancellation.observed(self):
            cancellation.stop_as_revoked(self)
        return retval

    def _defer_to_commit(self, options: dict[str, Any]) -> bool:
        if not self.publish_on_commit:
            return False
        # A retry's re-publish is Celery's own business, not part of the task body's
        # transaction: deferring it would lose the retry if that transaction rolls back.
        if options.get("retries"):
            return False
        return transaction.get_connection(DEFAULT_DB_ALIAS).in_atomic_block

    def _check_serialisable(self, args: Any, kwargs: Any, serializer: str | None) -> None:
        try:
            dumps((args or (), kwargs or {}), serializer=serializer or self.serializer)
        except EncodeError as exc:
            raise self._unserialisable(exc, serializer) from exc

    def _unserialisable(self, exc: Exception, serializer: str | None) -> UnserializableArguments:
        return UnserializableArguments(
            f"Arguments to task {self.name!r} cannot be serialised as "
            f"{serializer or self.serializer}: {exc}. Nothing was recorded or published. "
            "Pass plain data (str, int, float, bool, None, lists and dicts of these) "
            "and database ids instead of objects."
        )

    def _publish_now(
        self,
        args: Any,
        kwargs: Any,
        task_id: str | None,
        producer: Any,
        link: Any,
        link_error: Any,
        shadow: str | None,
        options: dict[str, Any],
    ) -> AsyncResult:
        """Celery's publish, with its errors made clear (BrokerUnavailable, bad args)."""
        try:
            result = super().apply_async(
                args, kwargs, task_id, producer, link, link_error, shadow, **options
            )
        except (UnserializableArguments, BrokerUnavailable):
            raise
        except EncodeError as exc:
            raise self._unserialisable(exc, options.get("serializer")) from exc
        except messages.CONNECTION_ERRORS as exc:
            raise BrokerUnavailable(
                f"Could not publish task {self.name!r}: the broker did not answer ({exc}). "
                "The job was not sent and nothing was recorded. Check that the broker "
                "(CELERY_BROKER_URL) is up, then try again; or call .delay() inside "
                "transaction.atomic(), where the job waits in the outbox until the broker "
                "is back."
            ) from exc
        if backpressure.limits():
            backpressure.note_published(self.app, self._queue_name(args, kwargs, options))
        return result

    def _publish_through_outbox(
        self,
        args: Any,
        kwargs: Any,
        task_id: str | None,
        producer: Any,
        link: Any,
        link_error: Any,
        shadow: str | None,
        options: dict[str, Any],
        deferred: bool,
        due_at: Any,
    ) -> AsyncResult:
        """Deferred to commit, held for a far ETA, or unique: the row comes first."""
        # The message is encoded later (after commit, or when due): fail here, now.
        self._check_arguments(args, kwargs, options.get("serializer"))
        key = uniqueness.key_for(self, args, kwargs)
        task_id = task_id or uuid()
        queue = self._queue_name(args, kwargs, options)
        correlation_id = correlation.current() or options.get("root_id") or task_id
        options = {
            **options,
            "headers": {**(options.get("headers") or {}), correlation.HEADER: correlation_id},
        }
        entry = self._outbox_entry(args, kwargs, task_id, link, link_error, shadow, options)
        entry.options["queue"] = queue
        state: dict[str, Any] = {}
        if due_at is not None:
            entry.due_at, state["eta"] = due_at, holds.eta_of(options, timezone.now())
        else:
            entry.claimed_at = timezone.now()  # by this call's own publish
        if key is not None:
            state["message"] = uniqueness.message_field(key)
        pending = translate.pending(
            task_id,
            self.name,
            args or (),
            kwargs or {},
            queue,
            entry.options.get("priority"),
            correlation_id,
        )
        if state:
            pending = replace(pending, state={**pending.state, **state})

        def record() -> str | None:
            """Write the row and the message; or return the id of the job holding `key`."""
            if key is not None:
                holder = uniqueness.holder(self, key)
                if holder is not None:
                    return holder
            if due_at is None:
                backpressure.check(self.app, queue)
            write_in_transaction([pending])  # the caller's or record_and_publish's
            if deferred or due_at is not None:
                entry.insert()
            return None

        if deferred:
            connection = transaction.get_connection(DEFAULT_DB_ALIAS)
            if key is None and due_at is None and with_commit.supported(connection):
                # The row is written with the caller's COMMIT (or before its next
                # statement), carrying its message for the relay, which publishes it
                # after commit: tasks.publish.with_commit, tasks.publish.relay.
                backpressure.check(self.app, queue)
                relayed = replace(pending, state={**pending.state, "message": entry.options})
                with_commit.defer(connection, with_commit.DeferredEnqueue(relayed))
                if backpressure.limits():
                    backpressure.note_published(self.app, queue)
                return self.AsyncResult(task_id)
            holder = record()
            if holder is not None:
                return self.AsyncResult(holder)
            if due_at is None:
                transaction.on_commit(outbox.commit_hook(entry, self.app), robust=True)
            return self.AsyncResult(task_id)

        def record_and_publish() -> str | None:
            # Outside the caller's transaction (there is none, or publish_on_commit is
            # off): a short one of our own. A unique job is published inside it, so a
            # broker error rolls the row (and the key) back with the exception.
            with transaction.atomic():
                holder = record()
                if holder is None and due_at is None:
                    self._publish_now(
                        args, kwargs, task_id, producer, link, link_error, shadow, options
                    )
                return holder

        holder = outbox.outside_transaction(record_and_publish)
        return self.AsyncResult(holder or task_id)

    def _republish_retry(
        self,
        args: Any,
        kwargs: Any,
        task_id: str | None,
        producer: Any,
        link: Any,
        link_error: Any,
        shadow: str | None,
        options: dict[str, Any],
    ) -> AsyncResult:
        """A retry (Task.retry): held if its ETA is far, kept if the broker is down.

        Celery turns a failed re-publish into Reject(requeue=False), and on Redis the
        job is then gone. Here the message waits in the outbox and the row says RETRY.
        What is written survives the task body's transaction (outbox.outside_transaction).
        """
        now = timezone.now()
        options = _with_absolute_eta(options)
        eta = options.get("eta")
        due_at = holds.hold_until(eta, now)
        error: BaseException | None = None
        if due_at is None:
            try:
                return self._publish_now(
                    args, kwargs, task_id, producer, link, link_error, shadow, options
                )
            except BrokerUnavailable as exc:
                error = exc
        task_id = task_id or uuid()
        entry = self._outbox_entry(args, kwargs, task_id, link, link_error, shadow, options)
        entry.options["queue"] = self._queue_name(args, kwargs, options)
        entry.due_at = due_at or now
        event = outbox.held_retry_event(task_id, self.name, int(options["retries"]), eta)

        def keep() -> None:
            with transaction.atomic():
                entry.insert(error=str(error) if error else "")
                record_now(event)

        try:
            outbox.outside_transaction(keep)
        except Exception:
            if error is not None:
                raise error from None  # Celery's own handling (Reject) applies
            raise
        if error is not None:
            logger.warning(
                "Broker unavailable for the retry of job %s (%s); kept in the outbox, "
                "published when the broker answers: %s",
                task_id,
                self.name,
                error,
            )
        return self.AsyncResult(task_id)

    def _outbox_entry(
        self,
        args: Any,
        kwargs: Any,
        task_id: str,
        link: Any,
        link_error: Any,
        shadow: str | None,
        options: dict[str, Any],
    ) -> messages.Entry:
        """Everything a later publish needs, as JSON, with times made absolute."""
        now = timezone.now()
        stored = {name: value for name, value in options.items() if name != "countdown"}
        eta = holds.eta_of(options, now)
        if eta is not None:
            stored["eta"] = eta
        expires = options.get("expires")
        if isinstance(expires, (int, float)):
            stored["expires"] = now + timedelta(seconds=expires)
        priority = options.get("priority")
        if priority is None:
            priority = self.priority
        if priority is not None:
            stored["priority"] = priority
        for name, value in (("link", link), ("link_error", link_error), ("shadow", shadow)):
            if value is not None:
                stored[name] = value
        stored.setdefault("ignore_result", self.ignore_result)
        parent = self.app.current_worker_task
        if parent is not None and parent.request.id:
            # Published later, maybe by another process: keep the lineage now.
            stored.setdefault("parent_id", parent.request.id)
            stored.setdefault("root_id", parent.request.root_id or parent.request.id)
        try:
            encoded = messages.encode_options(stored)
        except TypeError as exc:
            raise TypeError(
                f"An apply_async option of task {self.name!r} cannot be stored as JSON "
                f"({exc}); pass queue and exchange names, numbers and datetimes."
            ) from exc
        return messages.Entry(task_id, self.name, list(args or ()), dict(kwargs or {}), encoded)

    def _queue_name(self, args: Any, kwargs: Any, options: dict[str, Any]) -> str:
        """The queue the message goes to: the call's option, the task's, or its route."""
        queue = options.get("queue") or getattr(self, "queue", None)
        # The ignore[attr-defined, arg-type] below: Router has `routes` and route() takes
        # the task itself; celery-types' stub has neither.
        if queue is None and not self.app.amqp.router.routes:  # type: ignore[attr-defined]
            # What Router.route answers without task_routes, minus its dict copies.
            return str(self.app.conf.task_default_queue)
        if queue is None:
            routed = self.app.amqp.router.route(dict(options), self.name, args, kwargs, self)  # type: ignore[arg-type]
            queue = routed.get("queue")
        name = getattr(queue, "name", queue)
        return str(name or self.app.conf.task_default_queue)

    def _check_arguments(self, args: Any, kwargs: Any, serializer: str | None) -> None:
        """What Celery checks when it publishes: the call matches the signature (like
        calling the function) and the arguments serialise."""
        if self.typing:
            header = getattr(self, "__header__", None)
            if header is not None:
                header(*(args or ()), **(kwargs or {}))
        self._check_serialisable(args, kwargs, serializer)


def _with_absolute_eta(options: dict[str, Any]) -> dict[str, Any]:
    """`countdown` turned into `eta` once, so the row, the outbox and the message agree
    (and a message published later keeps the time it was asked for)."""
    eta = holds.eta_of(options, timezone.now())
    if eta is None:
        return options
    return {**{k: v for k, v in options.items() if k != "countdown"}, "eta": eta}
