"""The backoff policy (a pure function) and the task options that configure it."""

from __future__ import annotations

import random

import pytest
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from hypothesis import given
from hypothesis import strategies as st

from tasks.backoff import Backoff, RetryPolicy
from tasks.exceptions import InvalidTaskOption
from tasks.runtime.retry_policy import from_task_options

policies = st.builds(
    RetryPolicy,
    strategy=st.sampled_from(list(Backoff)),
    base=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    cap=st.floats(min_value=0, max_value=1e7, allow_nan=False),
    jitter=st.booleans(),
)


@given(policy=policies, retries=st.integers(min_value=-5, max_value=10_000), seed=st.integers())
def test_a_delay_is_never_negative_and_never_above_the_cap(
    policy: RetryPolicy, retries: int, seed: int
) -> None:
    delay = policy.delay(retries, random.Random(seed))
    assert 0 <= delay <= policy.cap
    assert delay <= policy.ceiling(retries)


@given(policy=policies.filter(lambda p: not p.jitter), retries=st.integers(0, 200))
def test_without_jitter_delays_never_shrink(policy: RetryPolicy, retries: int) -> None:
    assert policy.delay(retries + 1) >= policy.delay(retries)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Backoff.EXPONENTIAL, [2, 4, 8, 16, 30]),
        (Backoff.LINEAR, [2, 4, 6, 8, 10]),
        (Backoff.FIXED, [2, 2, 2, 2, 2]),
        (Backoff.NONE, [0, 0, 0, 0, 0]),
    ],
)
def test_each_strategy_without_jitter(strategy: Backoff, expected: list[float]) -> None:
    policy = RetryPolicy(strategy, base=2, cap=30, jitter=False)
    assert [policy.delay(n) for n in range(5)] == expected


def test_full_jitter_spreads_delays_over_the_whole_range() -> None:
    policy = RetryPolicy(Backoff.EXPONENTIAL, base=1, cap=600, jitter=True)
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(2000)]
    assert min(delays) < 0.5
    assert max(delays) > 7.5


def test_celery_spellings_keep_their_meaning() -> None:
    assert from_task_options(True) == RetryPolicy(Backoff.EXPONENTIAL, 1.0, 600.0, True)
    assert from_task_options(5, retry_backoff_max=60, retry_jitter=False) == RetryPolicy(
        Backoff.EXPONENTIAL, 5.0, 60.0, False
    )
    assert from_task_options(False) is None
    assert from_task_options("LINEAR", retry_backoff_base=3) == RetryPolicy(
        Backoff.LINEAR, 3.0, 600.0, True
    )


def test_unknown_strategy_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'exponential', 'linear', 'fixed', 'none'"):
        from_task_options("quadratic")


# --- options at decoration time ------------------------------------------------------------


def test_an_unknown_option_is_rejected_when_the_task_is_decorated() -> None:
    with pytest.raises(InvalidTaskOption, match=r"unknown option.*max_retry\b"):

        @shared_task(name="tests.options.typo", max_retry=3)
        def typo() -> None: ...


def test_a_bad_strategy_is_rejected_when_the_task_is_decorated() -> None:
    with pytest.raises(InvalidTaskOption, match=r"test_retry_policy\.test_a_bad_strategy"):

        @shared_task(name="tests.options.bad_strategy", retry_backoff="sometimes")
        def bad_strategy() -> None: ...


def test_unique_key_must_name_real_arguments() -> None:
    with pytest.raises(InvalidTaskOption, match="unique_key names order_id"):

        @shared_task(name="tests.options.bad_unique", unique_key=("order_id",))
        def bad_unique(customer_id: int) -> None: ...


def test_autoretry_for_must_be_exception_classes() -> None:
    with pytest.raises(InvalidTaskOption, match="autoretry_for"):

        @shared_task(name="tests.options.bad_autoretry", autoretry_for=("ValueError",))
        def bad_autoretry() -> None: ...


def test_layer_options_become_the_tasks_policy() -> None:
    @shared_task(
        name="tests.options.linear",
        autoretry_for=(ConnectionError,),
        retry_backoff="linear",
        retry_backoff_base=2,
        retry_backoff_max=9,
        soft_time_limit=5,
        dead_letter=False,
    )
    def linear() -> None: ...

    assert linear.retry_policy == RetryPolicy(Backoff.LINEAR, 2.0, 9.0, True)
    assert linear.retry_backoff is False  # Celery's own backoff must not run as well
    assert SoftTimeLimitExceeded in linear.autoretry_for  # a soft limit is retried
    assert linear.dead_letter is False
    assert linear.acks_on_failure is True


def test_soft_limit_retry_can_be_turned_off() -> None:
    @shared_task(
        name="tests.options.no_soft_retry", soft_time_limit=5, retry_on_soft_time_limit=False
    )
    def no_soft_retry() -> None: ...

    assert SoftTimeLimitExceeded not in tuple(getattr(no_soft_retry, "autoretry_for", ()))
