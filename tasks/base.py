"""TrackedTask: the base class of every task in the app (`Celery(task_cls=...)`).

It changes one thing about publishing, and only inside a database transaction:
`.delay()` / `.apply_async()` then writes the job's PENDING row in the caller's
transaction and publishes when the transaction commits. A rollback leaves neither a
row nor a message, and the caller still gets the task id at once (unlike Celery's
`delay_on_commit`, which returns None). Outside a transaction it publishes at once,
exactly like Celery.

A bad argument raises `UnserializableArguments` at the call site in both cases: inside
a transaction it is checked before the row is written (the message is only encoded
after commit); outside, kombu's own encoding error is re-raised with a clear message.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery import Task
from celery.result import AsyncResult
from celery.utils import uuid
from django.db import DEFAULT_DB_ALIAS, transaction
from kombu.exceptions import EncodeError
from kombu.serialization import dumps

from tasks import cancellation, correlation, events, progress
from tasks import retry_policy as retry_policy_module
from tasks.exceptions import UnserializableArguments
from tasks.recording import record_now
from tasks.retry_policy import RetryPolicy


class TrackedTask(Task):
    """A Celery Task whose publishing respects the caller's database transaction."""

    #: Publish on commit when called inside `transaction.atomic`. Set False on a task
    #: that must be published even if the caller's transaction rolls back.
    publish_on_commit: bool = True

    #: At most one pending or running job per key: argument names (a tuple of str) or
    #: a callable taking the call's (args, kwargs) and returning a string. See
    #: tasks.uniqueness.
    unique_key: Any = None
    #: Seconds after which a uniqueness key lapses even if its job never finished.
    unique_ttl: int = 3600

    #: How long to wait before a retry that names no countdown or eta: the autoretry
    #: of `autoretry_for` exceptions, `self.retry(exc=...)`, a worker-lost retry. Set
    #: from the `retry_backoff*` options (tasks.options); None means Celery's fixed
    #: `default_retry_delay`.
    retry_policy: RetryPolicy | None = RetryPolicy()
    retry_backoff_base: float = retry_policy_module.DEFAULT_BASE
    #: Celery waits this long before re-running a job whose pool process died (see
    #: CELERY_TASK_RETRY_ON_WORKER_LOST); Celery's 180 s would leave it idle for no
    #: reason. Retries that name no countdown use `retry_policy` instead.
    default_retry_delay = 1
    #: A soft time limit raises SoftTimeLimitExceeded in the task; retried by default.
    retry_on_soft_time_limit: bool = True
    #: Park the message in the dead-letter queue on a final failure; None = the
    #: TASKS_DEAD_LETTER setting (on by default).
    dead_letter: bool | None = None

    def retry(  # type: ignore[override]
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
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

    def apply_async(  # type: ignore[override]
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
        if not self._defer_to_commit(options):
            try:
                return super().apply_async(
                    args, kwargs, task_id, producer, link, link_error, shadow, **options
                )
            except UnserializableArguments:
                raise
            except EncodeError as exc:
                raise self._unserialisable(exc, options.get("serializer")) from exc
        # The message will be encoded after commit; a bad argument must fail here, now.
        self._check_serialisable(args, kwargs, options.get("serializer"))
        task_id = task_id or uuid()
        correlation_id = correlation.current() or options.get("root_id") or task_id
        headers = {**(options.pop("headers", None) or {}), correlation.HEADER: correlation_id}
        record_now(
            events.pending(
                task_id,
                self.name,
                args or (),
                kwargs or {},
                options.get("queue") or self.app.conf.task_default_queue,
                options.get("priority"),
                correlation_id,
            )
        )
        # The producer (if any) belongs to the caller's pool checkout and will be gone
        # at commit time; the deferred publish acquires its own.
        publish = partial(
            super().apply_async,
            args,
            kwargs,
            task_id,
            None,
            link,
            link_error,
            shadow,
            headers=headers,
            **options,
        )
        transaction.on_commit(publish)
        return self.AsyncResult(task_id)

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
