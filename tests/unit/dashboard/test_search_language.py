"""The explorer's filter language: parsing, errors an operator can act on, printing back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dashboard.search.language import (
    STATUSES,
    ArgMatch,
    FilterError,
    JobFilter,
    OneOf,
    parse,
)
from dashboard.search.times import TimeBound
from tasks.models import JobStatus

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def p(query: str) -> JobFilter:
    return parse(query, now=NOW, tz=UTC)


def error_of(query: str) -> FilterError:
    with pytest.raises(FilterError) as caught:
        p(query)
    return caught.value


def test_the_statuses_are_the_models() -> None:
    assert tuple(JobStatus.values) == STATUSES


def test_an_empty_query_is_the_empty_filter() -> None:
    assert p("") == JobFilter()
    assert p("   ") == JobFilter()
    assert JobFilter().to_query() == ""


# --- keys ----------------------------------------------------------------------------


def test_status_is_case_insensitive_and_commas_are_alternatives() -> None:
    assert p("status:failure,Revoked").status == OneOf(("FAILURE", "REVOKED"))


def test_a_repeated_key_adds_alternatives_and_repeats_collapse() -> None:
    assert p("status:failure status:revoked status:FAILURE").status == OneOf(("FAILURE", "REVOKED"))


def test_a_leading_minus_excludes() -> None:
    f = p("-status:success -queue:low,default status:failure")
    assert f.status == OneOf(("FAILURE",), ("SUCCESS",))
    assert f.queue == OneOf((), ("low", "default"))


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("task", "task"),
        ("queue", "queue"),
        ("worker", "worker"),
        ("error", "error"),
        ("correlation", "correlation"),
        ("batch", "batch"),
        ("root", "root"),
        ("parent", "parent"),
        ("id", "task_id"),
        ("fingerprint", "fingerprint"),
    ],
)
def test_keys_with_text_values(key: str, field: str) -> None:
    f = p(f"{key}:a.b,c -{key}:d")
    assert getattr(f, field) == OneOf(("a.b", "c"), ("d",))


def test_keys_are_case_insensitive() -> None:
    assert p("Status:failure TASK:x").status == OneOf(("FAILURE",))


def test_a_trailing_star_is_a_prefix_and_kept_as_typed() -> None:
    f = p("task:billing.* worker:w1@*")
    assert f.task == OneOf(("billing.*",))
    assert f.worker == OneOf(("w1@*",))


def test_a_star_elsewhere_is_refused_at_the_star() -> None:
    err = error_of("task:bill*ing")
    assert err.position == len("task:bill")
    assert "trailing *" in err.message


def test_quoted_values_keep_spaces_commas_and_escaped_quotes() -> None:
    f = p(r'error:"Timeout after 30s","a, b" error:"say \"hi\"" error:"C:\path"')
    assert f.error.values == ("Timeout after 30s", "a, b", 'say "hi"', r"C:\path")


def test_later_colons_belong_to_the_value() -> None:
    assert p("error:KeyError:x").error == OneOf(("KeyError:x",))


def test_plain_words_and_excluded_words() -> None:
    f = p('invoice 5f1c-aa -beat "a:b" -"-x"')
    assert f.words == ("invoice", "5f1c-aa", "a:b")
    assert f.not_words == ("beat", "-x")


def test_commas_in_a_plain_word_are_literal() -> None:
    assert p("a,b").words == ("a,b",)


def test_dead_and_retried_take_yes_or_no_and_minus_flips_them() -> None:
    assert p("dead:yes retried:NO") == JobFilter(dead=True, retried=False)
    assert p("-dead:yes -retried:no") == JobFilter(dead=False, retried=True)
    assert p("dead:true").dead is True


# --- arguments -------------------------------------------------------------------------


def test_argument_values_are_json() -> None:
    f = p('args.account_id:42 args.ratio:-1.5 args.name:x args.code:"42" args.on:true')
    assert f.args == (
        ArgMatch(("account_id",), (42,)),
        ArgMatch(("ratio",), (-1.5,)),
        ArgMatch(("name",), ("x",)),
        ArgMatch(("code",), ("42",)),
        ArgMatch(("on",), (True,)),
    )


def test_null_false_and_commas_in_arguments() -> None:
    f = p('args.x:null,false,1 -args.y:"null"')
    assert f.args == (ArgMatch(("x",), (None, False, 1)), ArgMatch(("y",), (), ("null",)))
    # 1 and true are different JSON values, though equal in Python.
    assert p("args.x:1,true").args[0].values == (1, True)


def test_kwargs_is_args_by_another_name() -> None:
    assert p("kwargs.account_id:42") == p("args.account_id:42")


def test_a_number_names_a_positional_argument_and_dots_go_deeper() -> None:
    f = p("args.0:x args.2.id:7 args.user.plan:pro")
    assert [a.path for a in f.args] == [(0,), (2, "id"), ("user", "plan")]


@pytest.mark.parametrize("query", ["args.:1", "args.a..b:1", "kwargs.0:1", "args.-x:1"])
def test_bad_argument_names(query: str) -> None:
    err = error_of(f"status:failure {query}")
    assert err.position == len("status:failure ")
    assert "args.0" in err.message


# --- times -----------------------------------------------------------------------------


def test_iso_times_naive_ones_in_the_given_time_zone() -> None:
    f = parse("after:2026-12-01T10:00 before:2026-12-02", now=NOW, tz=PARIS)
    assert f.after is not None
    assert f.before is not None
    assert f.after.moment == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert f.before.moment == datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    assert f.after.text == "2026-12-01T10:00"


def test_times_with_an_offset_keep_it() -> None:
    f = parse("after:2026-12-01T10:00+02:00", now=NOW, tz=PARIS)
    assert f.after is not None
    assert f.after.moment == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_naive_times_default_to_djangos_current_time_zone() -> None:
    f = parse("after:2026-12-01T10:00", now=NOW)
    assert f.after is not None
    assert f.after.moment == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # TIME_ZONE = "UTC"


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("2W", timedelta(weeks=2)),
    ],
)
def test_relative_times_count_back_from_now(text: str, ago: timedelta) -> None:
    f = p(f"after:{text}")
    assert f.after is not None
    assert f.after.moment == NOW - ago
    assert f.after.text == text.lower()


def test_a_quoted_time_may_use_a_space() -> None:
    f = p('after:"2026-12-01 10:00"')
    assert f.after is not None
    assert f.after.moment == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


# --- errors ----------------------------------------------------------------------------


def test_an_unknown_key_names_the_valid_ones() -> None:
    err = error_of("status:failure stauts:x")
    assert err.position == len("status:failure ")
    assert '"stauts:" is not a key (did you mean "status"?)' in err.message
    assert "status, task, queue, worker, after, before, error, args.<key>" in err.message
    assert "double quotes" in err.message


def test_a_bad_status_lists_the_statuses() -> None:
    err = error_of("status:failure,failed")
    assert err.position == len("status:failure,")
    assert 'did you mean "failure"' in err.message
    assert "pending, sent, received, started, retry, success, failure, revoked" in err.message


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "15x", "99999999999d"])
def test_a_bad_time(value: str) -> None:
    err = error_of(f"after:{value}")
    assert err.position == len("after:")
    assert "ISO date" in err.message
    assert "15m, 2h, 7d" in err.message


def test_an_unclosed_quote_points_at_it() -> None:
    err = error_of('status:failure error:"Timeout after')
    assert err.position == len("status:failure error:")
    assert "never closed" in err.message


@pytest.mark.parametrize(
    ("query", "position", "says"),
    [
        ("status:", 7, "needs a value"),
        ("status:failure,", 15, "needs a value"),
        ('error:""', 6, "needs a value"),
        ('""', 0, "empty word"),
        ("x - y", 2, 'A "-" must be followed'),
        ("after:2h after:1h", 9, "given twice"),
        ("after:2h,1h", 9, "one value"),
        ("-after:2h", 0, "use before: instead"),
        ("-before:2h", 0, "use after: instead"),
        ("dead:maybe", 5, "yes or no"),
        ("after:1h before:2h", 9, "no job can match"),
    ],
)
def test_errors_and_their_positions(query: str, position: int, says: str) -> None:
    err = error_of(query)
    assert (err.position, says in err.message) == (position, True), err.message


def test_filter_error_reads_as_its_message() -> None:
    assert str(error_of("nope:1")) == error_of("nope:1").message


# --- printing back ---------------------------------------------------------------------

FULL = (
    'invoice -"a:b" status:failure,revoked -status:success task:billing.* -queue:low '
    'worker:w1 after:2026-12-01T10:00 before:2h error:"Timeout after 30s" '
    'args.account_id:42 args.0:"7" -args.user.plan:pro,null correlation:c1 batch:g1 '
    "root:r1 parent:p1 id:t1 fingerprint:abc dead:yes retried:no"
)


def test_the_canonical_query_of_a_canonical_query_is_itself() -> None:
    assert p(FULL).to_query() == FULL


@pytest.mark.parametrize(
    "query",
    [
        FULL,
        'error:"x,y" error:\'single\' "-starts with minus"',
        r'error:"back\\slash \"q\"" args.s:"true" args.n:1e3 args.e:""',
        'after:"2026-12-01 10:00" -dead:yes',
        "kwargs.x:1 STATUS:Failure",
    ],
)
def test_round_trip(query: str) -> None:
    f = p(query)
    assert p(f.to_query()) == f


def test_canonical_order_and_spelling() -> None:
    f = p("retried:yes -dead:no kwargs.x:1 Status:FAILURE hello")
    assert f.to_query() == "hello status:failure args.x:1 dead:yes retried:yes"


# --- building links --------------------------------------------------------------------


def test_with_term_builds_the_overviews_links() -> None:
    moment = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    f = JobFilter().with_term("status", "failure").with_term("fingerprint", "abc")
    f = f.with_term("after", moment)
    assert f.to_query() == "status:failure after:2026-12-06T10:00 fingerprint:abc"


def test_with_term_replaces_one_side_of_a_key() -> None:
    f = p("status:failure -status:success task:a")
    assert f.with_term("status", "revoked").status == OneOf(("REVOKED",), ("SUCCESS",))
    assert f.with_term("status", "retry", negated=True).status == OneOf(("FAILURE",), ("RETRY",))
    assert f.with_term("status").status == OneOf((), ("SUCCESS",))
    assert f.with_term("status", "failure", "revoked").task == OneOf(("a",))


def test_with_term_on_arguments_keeps_their_place() -> None:
    f = p("args.a:1 args.b:2 -args.b:3")
    assert f.with_term("args.b", "x y").to_query() == 'args.a:1 args.b:"x y" -args.b:3'
    assert f.with_term("args.c", True, None).to_query().endswith("args.c:true,null")
    assert f.with_term("kwargs.a", "42").args[0] == ArgMatch(("a",), ("42",))


def test_with_term_flags_times_and_values_that_need_quotes() -> None:
    f = JobFilter().with_term("dead", True).with_term("after", "2h", now=NOW)
    f = f.with_term("error", 'Timeout "x", then y')
    assert f.dead is True
    assert f.after == TimeBound(NOW - timedelta(hours=2), "2h")
    assert f.error.values == ('Timeout "x", then y',)
    assert p(f.to_query()) == f


def test_with_term_checks_values_like_the_parser() -> None:
    with pytest.raises(FilterError, match="not a status"):
        JobFilter().with_term("status", "finished")
    with pytest.raises(FilterError, match="not a key"):
        JobFilter().with_term("colour", "red")


def test_without_drops_both_sides() -> None:
    f = p("status:failure -status:success args.a:1 -args.a:2 after:2h dead:yes")
    assert f.without("status").without("args.a").without("after").without("dead") == JobFilter()


def test_time_bound_spelling_is_as_precise_as_needed() -> None:
    assert TimeBound.at(datetime(2026, 12, 6, 10, 0, 5, tzinfo=UTC)).text == "2026-12-06T10:00:05"
    at = datetime(2026, 12, 6, 10, 0, 0, 1500, tzinfo=UTC)
    assert TimeBound.at(at).text == "2026-12-06T10:00:00.001500"
    paris = TimeBound.at(datetime(2026, 12, 6, 10, 0, tzinfo=UTC), PARIS)
    assert paris.text == "2026-12-06T11:00"
