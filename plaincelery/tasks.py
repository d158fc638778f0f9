"""Ordinary Celery tasks, as any Django project has them. No imports from `tasks`."""

from __future__ import annotations

from celery import shared_task


@shared_task
def word_count(text: str) -> int:
    return len(text.split())


@shared_task
def parse_amount(raw: str) -> float:
    """Fails with ValueError on bad input: a non-retryable error."""
    return float(raw)


@shared_task
def notify_followers(user_id: int, followers: int) -> list[str]:
    """Enqueues one child job per follower (they inherit the correlation id)."""
    return [notify.delay(user_id, n).id for n in range(followers)]


@shared_task
def notify(user_id: int, follower: int) -> str:
    return f"user {user_id} -> follower {follower}"


@shared_task
def total(values: list[float]) -> float:
    """A chord body: sums its header's results."""
    return sum(values)
