"""URLs for tests/tasks/test_outbox.py (tests/urls.py is shared; this one is not)."""

from __future__ import annotations

from django.urls import path

from tests.tasks.test_outbox import enqueue_counted_job

urlpatterns = [path("enqueue-counted/", enqueue_counted_job)]
