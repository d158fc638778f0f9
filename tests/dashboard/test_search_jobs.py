"""The explorer's filters against known rows: exactly the expected jobs, newest first,
counted up to a cap and paged by keyset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboard.search import suggestions
from dashboard.search.jobs import (
    BadCursor,
    capped_count,
    decode_cursor,
    matching_jobs,
    page_after,
)
from dashboard.search.language import parse
from tasks.models import Job, JobStatus

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HAS_FINGERPRINT = any(f.name == "fingerprint" for f in Job._meta.get_fields())


def job(task_id: str, minutes_ago: float = 0, **fields: Any) -> Job:
    fields.setdefault("name", "billing.charge")
    fields.setdefault("status", JobStatus.SUCCESS)
    return Job.objects.create(
        task_id=task_id, created_at=NOW - timedelta(minutes=minutes_ago), **fields
    )


def found(query: str) -> list[str]:
    return [j.task_id for j in matching_jobs(parse(query, now=NOW))]


def test_a_time_range_with_a_status_and_error_text() -> None:
    job("in-1", 30, status=JobStatus.FAILURE, error="TimeoutError: Timeout after 30s")
    job("in-2", 50, status=JobStatus.FAILURE, error="redis: timeout AFTER 30S, giving up")
    job("other-error", 40, status=JobStatus.FAILURE, error="KeyError: 'account'")
    job("not-failed", 40, status=JobStatus.RETRY, error="Timeout after 30s")
    job("too-old", 70, status=JobStatus.FAILURE, error="Timeout after 30s")
    job("too-new", 5, status=JobStatus.FAILURE, error="Timeout after 30s")
    job("at-after", 60, status=JobStatus.FAILURE, error="Timeout after 30s")
    job("at-before", 10, status=JobStatus.FAILURE, error="Timeout after 30s")
    query = 'status:failure after:2026-12-06T11:00 before:10m error:"timeout after 30s"'
    # after: is inclusive, before: exclusive; newest first.
    assert found(query) == ["in-1", "in-2", "at-after"]


def test_error_alternatives() -> None:
    job("a", error="Timeout")
    job("b", error="ConnectionRefused")
    job("c", error="KeyError")
    assert set(found("error:timeout,refused")) == {"a", "b"}
    assert set(found("-error:timeout,refused")) == {"c"}


def test_keyword_arguments_compare_as_json() -> None:
    job("int", kwargs={"account_id": 42, "user": {"plan": "pro"}})
    job("str", kwargs={"account_id": "42", "user": {"plan": "free"}})
    job("other", kwargs={"account_id": 43})
    job("json-null", kwargs={"account_id": None})
    job("no-key", kwargs={"other": 42})
    job("no-kwargs", kwargs=None)
    assert found("args.account_id:42") == ["int"]
    assert found('args.account_id:"42"') == ["str"]
    assert set(found("kwargs.account_id:42,43")) == {"int", "other"}
    assert set(found("args.user.plan:pro")) == {"int"}
    # Excluding keeps the jobs without that argument.
    assert set(found("-args.account_id:42")) == {
        "str",
        "other",
        "json-null",
        "no-key",
        "no-kwargs",
    }
    # null is "no value": missing, JSON null or no kwargs at all.
    assert set(found("args.account_id:null")) == {"json-null", "no-key", "no-kwargs"}
    assert set(found("-args.account_id:null")) == {"int", "str", "other"}
    assert set(found("-args.account_id:null,42")) == {"str", "other"}
    assert set(found("args.account_id:null,43")) == {"other", "json-null", "no-key", "no-kwargs"}


def test_positional_arguments_and_booleans() -> None:
    job("x-first", args=["x", 1])
    job("x-second", args=[1, "x"])
    job("flag", args=[True], kwargs={"dry_run": True})
    job("no-args", args=None)
    assert found("args.0:x") == ["x-first"]
    assert found("args.1:x") == ["x-second"]
    assert found("args.0:true args.dry_run:true") == ["flag"]
    assert set(found("-args.0:x")) == {"x-second", "flag", "no-args"}


def test_an_argument_named_like_a_django_lookup_is_still_an_argument() -> None:
    job("a", kwargs={"contains": "x", "exact": 1})
    job("b", kwargs={"contains": "y"})
    assert found("args.contains:x args.exact:1") == ["a"]


def test_negation() -> None:
    job("ok", status=JobStatus.SUCCESS, queue="high")
    job("failed-low", status=JobStatus.FAILURE, queue="low")
    job("failed-high", status=JobStatus.FAILURE, queue="high")
    job("revoked", status=JobStatus.REVOKED, queue="default")
    assert set(found("-status:success -queue:low")) == {"failed-high", "revoked"}
    assert set(found("-status:success,revoked")) == {"failed-low", "failed-high"}
    assert set(found("status:failure,revoked -queue:high")) == {"failed-low", "revoked"}


def test_a_trailing_star_is_a_name_prefix() -> None:
    job("charge", name="billing.charge")
    job("refund", name="billing.refund")
    job("look-alike", name="xbilling.charge")
    job("mail", name="mail.send")
    assert set(found("task:billing.*")) == {"charge", "refund"}
    assert set(found("task:billing.*,mail.send")) == {"charge", "refund", "mail"}
    assert set(found("-task:billing.*")) == {"look-alike", "mail"}
    assert found("task:billing.charge") == ["charge"]


def test_workers_and_queues() -> None:
    job("a", worker="w1@host-a", queue="high")
    job("b", worker="w1@host-b", queue="low")
    job("c", worker="w2@host-a", queue="high")
    assert set(found("worker:w1@*")) == {"a", "b"}
    assert found("worker:w1@*,w2@host-a queue:low") == ["b"]


def test_plain_words_match_a_task_id_or_part_of_a_name() -> None:
    job("5f1c", name="mail.send")
    job("x", name="billing.Invoice_pdf")
    job("y", name="billing.charge")
    assert found("5f1c") == ["5f1c"]
    assert found("invoice") == ["x"]
    assert set(found("billing")) == {"x", "y"}
    assert found("billing -invoice") == ["y"]
    assert found("5f") == []  # an id matches whole
    assert found("nothing-like-it") == []


def test_words_match_names_the_dashboard_knows_beyond_the_newest_jobs() -> None:
    # A registered task's job, older than the newest rows the dashboard reads for names.
    job("old-outbox", 60, name="tasks.outbox.publish_due")
    for i in range(suggestions.RECENT_ROWS):
        job(f"new-{i}", 1, name="mail.send")
    assert found("OUTBOX") == ["old-outbox"]


def test_correlation_batch_root_parent_and_id() -> None:
    job("top", correlation_id="top", root_id="top")
    job("child", correlation_id="top", root_id="top", parent_id="top", group_id="g1")
    job("sibling", correlation_id="top", root_id="top", parent_id="top", group_id="g1")
    job("grandchild", correlation_id="top", root_id="top", parent_id="child")
    job("stranger", correlation_id="else", root_id="stranger")
    family = {"top", "child", "sibling", "grandchild"}
    assert set(found("correlation:top")) == family
    assert set(found("root:top")) == family
    assert set(found("-root:top")) == {"stranger"}
    assert set(found("batch:g1")) == {"child", "sibling"}
    assert set(found("parent:top")) == {"child", "sibling"}
    assert set(found("parent:child,top")) == {"child", "sibling", "grandchild"}
    assert found("-parent:top -batch:g1 correlation:top") == ["grandchild", "top"]
    assert found("id:child") == ["child"]
    assert set(found("id:child,stranger")) == {"child", "stranger"}


@pytest.mark.skipif(not HAS_FINGERPRINT, reason="Job.fingerprint is not in tasks/models.py yet")
def test_fingerprint_is_exact() -> None:
    job("a", status=JobStatus.FAILURE, fingerprint="abc")
    job("b", status=JobStatus.FAILURE, fingerprint="abcd")
    job("c", status=JobStatus.SUCCESS)
    assert found("fingerprint:abc") == ["a"]
    assert set(found("-fingerprint:abc")) == {"b", "c"}


def test_dead_letters_parked_or_not() -> None:
    job("parked", status=JobStatus.FAILURE, dead_lettered_at=NOW)
    job(
        "replayed",
        status=JobStatus.FAILURE,
        dead_lettered_at=NOW,
        dead_letter_resolution="replayed",
    )
    job("plain", status=JobStatus.FAILURE)
    assert found("dead:yes") == ["parked"]
    assert set(found("dead:no")) == {"replayed", "plain"}


def test_retried_by_an_operator() -> None:
    original = job("original", 10, status=JobStatus.FAILURE)
    job("rerun", 5, retried_from=original)
    job("untouched", 10, status=JobStatus.FAILURE)
    assert found("retried:yes") == ["original"]
    assert set(found("status:failure retried:no")) == {"untouched"}


def test_newest_first_then_by_row() -> None:
    job("old", 10)
    job("tie-1", 5)
    job("tie-2", 5)
    job("new", 1)
    assert found("") == ["new", "tie-2", "tie-1", "old"]


def test_capped_count() -> None:
    for i in range(5):
        job(f"j{i}", i)
    qs = matching_jobs(parse("", now=NOW))
    assert capped_count(qs, 10) == (5, False)
    assert capped_count(qs, 5) == (5, False)
    assert capped_count(qs, 3) == (3, True)


def test_keyset_pages_walk_every_row_once_across_ties() -> None:
    for i in range(11):
        job(f"j{i:02}", minutes_ago=i // 3, status=JobStatus.FAILURE)  # three per minute
    job("other", status=JobStatus.SUCCESS)
    qs = matching_jobs(parse("status:failure", now=NOW))
    expected = [j.task_id for j in qs]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = page_after(qs, cursor, 4)
        seen += [j.task_id for j in page.rows]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert len(seen) == 11
    assert pages == 3


def test_a_full_last_page_has_no_next_cursor() -> None:
    for i in range(4):
        job(f"j{i}", i)
    qs = matching_jobs(parse("", now=NOW))
    first = page_after(qs, None, 2)
    assert first.next_cursor is not None
    second = page_after(qs, first.next_cursor, 2)
    assert [j.task_id for j in second.rows] == ["j2", "j3"]
    assert second.next_cursor is None


def test_a_cursor_names_the_last_row_shown() -> None:
    job("old", 3)
    newest = job("new", 1)
    page = page_after(Job.objects.all(), None, 1)
    assert page.rows == [newest]
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor) == (newest.created_at, newest.pk)


@pytest.mark.parametrize("cursor", ["x", "1_2_3", "12", "99999999999999999999_1"])
def test_a_forged_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(BadCursor):
        page_after(Job.objects.all(), cursor, 10)
