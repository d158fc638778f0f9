"""Correlation ids: one id follows a request through every job it causes.

A view's request id (`X-Request-ID`, or a new one) is put on every job enqueued while
handling it; a job enqueued by another job inherits its parent's id. The id travels in
the message header `job_correlation_id` (Celery's own `correlation_id` property is the
task id, so that name is taken).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from celery import current_task
from django.http import HttpRequest, HttpResponse

HEADER = "job_correlation_id"
REQUEST_HEADER = "X-Request-ID"
_VALID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

_current: ContextVar[str | None] = ContextVar("job_correlation_id", default=None)


def new_id() -> str:
    return uuid.uuid4().hex


def current() -> str | None:
    """The id in force here: the request's, else the running task's, else None."""
    value = _current.get()
    if value:
        return value
    # current_task is a proxy: it is falsy outside a running task.
    if current_task and current_task.request.id:
        request = current_task.request
        return getattr(request, HEADER, None) or request.root_id or request.id
    return None


def clean(value: str | None) -> str | None:
    """A client-supplied id, or None when it is missing or not a plain token."""
    if value and _VALID.match(value):
        return value
    return None


@contextmanager
def bound(correlation_id: str) -> Iterator[None]:
    token = _current.set(correlation_id)
    try:
        yield
    finally:
        _current.reset(token)


class CorrelationIdMiddleware:
    """Binds the request's X-Request-ID (or a fresh id) for the duration of the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        correlation_id = clean(request.headers.get(REQUEST_HEADER)) or new_id()
        with bound(correlation_id):
            response = self.get_response(request)
        response[REQUEST_HEADER] = correlation_id
        return response
