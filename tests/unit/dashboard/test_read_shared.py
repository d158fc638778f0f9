"""Live answers shared by every tab for a moment, per key; off at 0."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from django.test import override_settings

from dashboard.read import shared as sharing


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    sharing.forget()
    yield
    sharing.forget()


def counter() -> tuple[list[int], Callable[[], int]]:
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    return calls, compute


@override_settings(TASKS_DASHBOARD_SHARED_SECONDS=0.2)
def test_one_computation_serves_every_asker_within_the_interval() -> None:
    calls, compute = counter()
    assert [sharing.shared("k", compute) for _ in range(5)] == [1] * 5
    assert sharing.shared(("other", 1), compute) == 2
    time.sleep(0.25)
    assert sharing.shared("k", compute) == 3
    assert len(calls) == 3


@override_settings(TASKS_DASHBOARD_SHARED_SECONDS=0)
def test_zero_reads_every_time() -> None:
    calls, compute = counter()
    for _ in range(3):
        sharing.shared("k", compute)
    assert len(calls) == 3
