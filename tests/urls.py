"""Views used only by tests: a view that enqueues inside a transaction, as users write them."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path

from plaincelery.tasks import notify_followers, word_count


class Rollback(Exception):
    pass


def _queue_length(queue: str) -> int:
    client = redis.Redis.from_url(settings_broker_url())
    try:
        return int(client.llen(queue))
    finally:
        client.close()


def settings_broker_url() -> str:
    from project.celery import app

    return str(app.conf.broker_url or settings.CELERY_BROKER_URL)


def enqueue_in_transaction(request: HttpRequest) -> JsonResponse:
    queue = request.GET["queue"]
    with transaction.atomic():
        result = word_count.apply_async(("three little words",), queue=queue)
        length_inside = _queue_length(queue)
        if request.GET.get("fail"):
            raise Rollback("the view failed after enqueueing")
    return JsonResponse({"task_id": result.id, "queue_length_inside_transaction": length_inside})


def enqueue_fan_out(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        result = notify_followers.delay(7, 3)
    return JsonResponse({"task_id": result.id})


urlpatterns = [
    path("enqueue/", enqueue_in_transaction),
    path("fan-out/", enqueue_fan_out),
]
