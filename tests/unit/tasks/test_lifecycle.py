"""The precedence rule: state only moves forward, whatever order events arrive in."""

from __future__ import annotations

import itertools

import pytest

from tasks.lifecycle import supersedes
from tasks.models import JobStatus as S

# One job's life with one retry, in the order things really happen, as (status, attempt).
LIFE = [
    (S.PENDING, 0),
    (S.SENT, 0),
    (S.RECEIVED, 1),
    (S.STARTED, 1),
    (S.RETRY, 1),
    (S.RECEIVED, 2),
    (S.STARTED, 2),
    (S.SUCCESS, 2),
]


def test_each_step_of_a_life_supersedes_the_one_before() -> None:
    for (old, old_attempt), (new, new_attempt) in itertools.pairwise(LIFE):
        assert supersedes(new, new_attempt, old, old_attempt), (old, new)


def test_no_step_supersedes_a_later_one() -> None:
    for earlier, later in itertools.combinations(LIFE, 2):
        if earlier == later:
            continue
        assert not supersedes(earlier[0], earlier[1], later[0], later[1]), (earlier, later)


@pytest.mark.parametrize("final", [S.SUCCESS, S.FAILURE, S.REVOKED])
def test_a_terminal_state_is_never_overwritten(final: str) -> None:
    for status in S.values:
        for attempt in range(4):
            assert not supersedes(status, attempt, final, 1)


def test_a_terminal_state_overwrites_any_earlier_state_even_a_late_attempt_count() -> None:
    assert supersedes(S.FAILURE, 0, S.STARTED, 3)


def test_the_two_halves_of_a_retry_both_land() -> None:
    # The retry's re-publish (RETRY, attempt 1) and the RETRY signal of attempt 1.
    assert supersedes(S.RETRY, 1, S.RETRY, 1)
