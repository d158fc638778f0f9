"""Schedules in words (dashboard.read.schedule_words): common crontab shapes described,
every other shape shown as its five fields, never an exception."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard.read import schedule_words


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ("* * * * *", "Every minute"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("0,15,30,45 * * * *", "Every 15 minutes"),
        ("0-59/10 * * * *", "Every 10 minutes"),
        ("30 * * * *", "Every hour at :30"),
        ("0,30 * * * *", "Every 30 minutes"),
        ("15,45 * * * *", "Every hour at :15 and :45"),
        ("0 */2 * * *", "Every 2 hours at :00"),
        ("0 4 * * *", "Every day at 04:00"),
        ("5 8,20 * * *", "Every day at 08:05 and 20:05"),
        ("0 9 * * 1-5", "At 09:00, Monday to Friday"),
        ("0 9 * * mon-fri", "At 09:00, Monday to Friday"),
        ("0 9 * * 0", "At 09:00, on Sundays"),
        ("0 9 * * sat,sun", "At 09:00, on Saturday and Sunday"),
        ("0 9 * * 1,3,5", "At 09:00, on Monday, Wednesday and Friday"),
        ("*/15 9-17 * * 1-5", "Every 15 minutes from 09:00 to 17:59, Monday to Friday"),
        ("* 3 * * *", "Every minute from 03:00 to 03:59"),
        ("0 0 1 * *", "At 00:00, on the 1st of every month"),
        ("0 6 1,15 * *", "At 06:00, on the 1st and 15th of every month"),
        ("0 12 25 12 *", "At 12:00, on the 25th of December"),
        ("0 0 * 1 *", "At 00:00, every day in January"),
        ("0 0 * 6-8 1", "At 00:00, on Mondays in June to August"),
        ("10 9-17 * * *", "Every hour at :10 from 09:00 to 17:59"),
        (
            "0 22 2,3,11,12,13,21 * *",
            "At 22:00, on the 2nd, 3rd, 11th, 12th, 13th and 21st of every month",
        ),
    ],
)
def test_common_crontab_shapes_are_described(fields: str, words: str) -> None:
    assert schedule_words.crontab(*fields.split()) == words


@pytest.mark.parametrize(
    "fields",
    [
        "*/7 * * * *",  # not an even step of the hour: minutes 0, 7, ..., 56
        "1,2,3,4,5,6,7 * * * *",
        "0 9 13 * 5",  # Celery wants the 13th *and* a Friday
        "0 1,3,5,7,9,11,13 * * *",
    ],
)
def test_other_shapes_fall_back_to_the_five_fields(fields: str) -> None:
    assert schedule_words.crontab(*fields.split()) == f"Cron {fields}"


@pytest.mark.parametrize(
    "fields",
    ["61 * * * *", "* */0 * * *", "* * * * funday", "* * * * 7", "1,,2 * * * *", "*/ * * * *"],
)
def test_a_crontab_celery_cannot_read_says_it_never_runs(fields: str) -> None:
    words = schedule_words.crontab(*fields.split())
    assert words.startswith(f"Cron {fields}")
    assert "never runs" in words


_FIELD = st.text(alphabet="0123456789*/,-abcdefghijklmnopqrstuvwxyz ", max_size=12)


@given(st.tuples(_FIELD, _FIELD, _FIELD, _FIELD, _FIELD))
def test_any_five_fields_give_words_without_raising(fields: tuple[str, ...]) -> None:
    words = schedule_words.crontab(*fields)
    assert words
    assert words[0].isupper()


@pytest.mark.parametrize(
    ("every", "period", "words"),
    [
        (5, "seconds", "Every 5 seconds"),
        (1, "minutes", "Every minute"),
        (2, "hours", "Every 2 hours"),
        (1, "days", "Every day"),
    ],
)
def test_intervals(every: int, period: str, words: str) -> None:
    assert schedule_words.interval(every, period) == words


def test_solar_and_clocked() -> None:
    assert (
        schedule_words.solar("Sunrise", Decimal("51.507400"), Decimal("-0.127800"))
        == "At sunrise (51.5074, -0.1278)"
    )
    moment = datetime(2030, 1, 2, 3, 4, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert schedule_words.clocked(moment) == "Once at 2030-01-02 04:04 CET"
