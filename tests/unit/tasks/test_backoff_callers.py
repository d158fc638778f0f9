"""Every retry loop waits by the one backoff function (tasks.backoff.RetryPolicy). Pure."""

from __future__ import annotations

from django.test import override_settings

from tasks.publish import outbox
from tasks.publish.relay import MAX_IDLE_WAIT, Relay
from tasks.record.recorder import WRITE_RETRY


def test_a_failed_publish_waits_2_4_8_seconds_up_to_an_hour() -> None:
    assert [outbox.backoff(n) for n in (0, 1, 2, 3)] == [2.0, 2.0, 4.0, 8.0]
    assert outbox.backoff(40) == outbox.MAX_BACKOFF


@override_settings(TASKS_RELAY_POLL_INTERVAL=0.5)
def test_the_relay_waits_twice_its_poll_interval_doubling_up_to_its_cap() -> None:
    assert [Relay._backoff(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert Relay._backoff(50) == MAX_IDLE_WAIT


def test_the_recorder_retries_a_write_from_a_tenth_of_a_second_up_to_five() -> None:
    assert [WRITE_RETRY.ceiling(n) for n in (0, 1, 2)] == [0.1, 0.2, 0.4]
    assert WRITE_RETRY.ceiling(30) == 5.0
    assert WRITE_RETRY.delay(3) == WRITE_RETRY.ceiling(3)  # no jitter: one recorder
