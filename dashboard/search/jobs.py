"""A JobFilter as a query on the job table, newest first, paged by keyset.

Each condition is written the way an index on Job can serve it: correlation, batch, root
and fingerprint spell out the partial indexes' conditions (tasks.models.correlated_with,
IN_A_GROUP, rooted_at, HAS_FINGERPRINT); SQLite uses a partial index only when the
WHERE clause repeats its condition. Nothing here counts the whole table or pages with
OFFSET: `capped_count` stops at a cap, `page_after` continues from the last row shown.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Exists, JSONField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.lookups import IsNull

from dashboard.search import suggestions
from dashboard.search.language import ArgMatch, JobFilter, OneOf, Scalar
from dashboard.search.times import TimeBound
from tasks.models import (
    HAS_FINGERPRINT,
    IN_A_GROUP,
    IS_A_RERUN,
    NOT_OWN_ROOT,
    Job,
    correlated_with,
    rooted_at,
)

NEWEST_FIRST = ("-created_at", "-id")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PARKED = Q(dead_lettered_at__isnull=False, dead_letter_resolution="")


def matching_jobs(f: JobFilter) -> QuerySet[Job]:
    """The jobs `f` matches, newest first (creation time, then row id)."""
    names = suggestions.known().names if f.words or f.not_words else frozenset()
    conditions = [
        *(_word(w, names) for w in f.words),
        *(~_word(w, names) for w in f.not_words),
        *_one_of(f.status, lambda vs: Q(status__in=vs)),
        *_one_of(f.task, lambda vs: _pattern("name", vs)),
        *_one_of(f.queue, lambda vs: _pattern("queue", vs)),
        *_one_of(f.worker, lambda vs: _pattern("worker", vs)),
        *_one_of(f.error, lambda vs: _any(Q(error__icontains=v) for v in vs)),
        *_one_of(f.correlation, lambda vs: _any(correlated_with(v) for v in vs)),
        *_one_of(f.batch, lambda vs: IN_A_GROUP & Q(group_id__in=vs)),
        *_one_of(f.root, lambda vs: _any(rooted_at(v) for v in vs)),
        *_one_of(f.parent, _children_of),
        *_one_of(f.task_id, lambda vs: Q(task_id__in=vs)),
        *_one_of(f.fingerprint, lambda vs: HAS_FINGERPRINT & Q(fingerprint__in=vs)),
        *(_argument(arg) for arg in f.args),
    ]
    if f.after:
        conditions.append(Q(created_at__gte=f.after.moment))
    if f.before:
        conditions.append(Q(created_at__lt=f.before.moment))
    if f.dead is not None:
        conditions.append(PARKED if f.dead else ~PARKED)
    if f.retried is not None:
        rerun = Exists(Job.objects.filter(IS_A_RERUN, retried_from=OuterRef("pk")))
        conditions.append(Q(rerun) if f.retried else ~Q(rerun))
    if f.recovered is not None:
        conditions.append(_recovered(f.recovered))
    return Job.objects.filter(*conditions).order_by(*NEWEST_FIRST)


def _recovered(recovered: bool | TimeBound) -> Q:
    """Jobs the layer published again after a broker lost them (`recovered_at`), or did
    at or after a time. No index has recovered_at (recovered jobs are rare, and the
    column came without one): the condition filters the rows the rest of the query
    reads, newest first along the created_at index (the explorer's keyset), a page and
    a capped count at a time. Bounded by after:/before: it reads that range of the
    index only; without a bound, a table where few jobs match is read to its end to
    count them (as for error: or retried:), so add after: on a large table.
    """
    if isinstance(recovered, TimeBound):
        return Q(recovered_at__gte=recovered.moment)
    return Q(recovered_at__isnull=not recovered)


def capped_count(qs: QuerySet[Job], cap: int) -> tuple[int, bool]:
    """(matching rows up to `cap`, whether there are more): a COUNT over a LIMIT
    subquery, which reads at most cap + 1 rows whatever the table holds."""
    n = qs.order_by()[: cap + 1].count()
    return min(n, cap), n > cap


@dataclass(frozen=True)
class Page:
    rows: list[Job]
    next_cursor: str | None
    """Where the next (older) page starts; None on the last page."""


class BadCursor(ValueError):
    """A cursor this module did not write (a hand-edited URL): start from the top."""


def page_after(qs: QuerySet[Job], cursor: str | None, size: int) -> Page:
    """`size` rows of `qs`, newest first, after the row `cursor` names (from the top when
    None). Keyset paging: page 1000 costs what page 1 does."""
    if size < 1:
        raise ValueError(f"a page holds at least one row, not {size}")
    rows_qs = qs.order_by(*NEWEST_FIRST)
    if cursor:
        created_at, pk = decode_cursor(cursor)
        # `created_at <= c` first: a range the (status, name, ...) + created_at indexes
        # scan in order; the OR alone would make PostgreSQL read and sort everything.
        rows_qs = rows_qs.filter(
            Q(created_at__lte=created_at),
            Q(created_at__lt=created_at) | Q(id__lt=pk),
        )
    rows = list(rows_qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, encode_cursor(rows[-1]) if more else None)


def encode_cursor(job: Job) -> str:
    micros = (job.created_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{job.pk}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        micros, pk = (int(part) for part in cursor.split("_"))
        return EPOCH + timedelta(microseconds=micros), pk
    except (ValueError, OverflowError):
        raise BadCursor(f"not a page cursor: {cursor!r}") from None


def _one_of(one_of: OneOf, condition: Callable[[tuple[str, ...]], Q]) -> list[Q]:
    found = [condition(one_of.values)] if one_of.values else []
    return found + ([~condition(one_of.excluded)] if one_of.excluded else [])


def _any(conditions: Iterable[Q]) -> Q:
    return functools.reduce(operator.or_, conditions)


def _word(word: str, names: frozenset[str]) -> Q:
    """The task id `word`, or a task name containing it (any case). Names are matched
    among the known ones (dashboard.search.suggestions), then looked up by the name
    index: a LIKE '%word%' would read the whole table when few jobs match."""
    lower = word.lower()
    containing = sorted(name for name in names if lower in name.lower())
    return Q(task_id=word) | Q(name__in=containing) if containing else Q(task_id=word)


def _pattern(column: str, values: tuple[str, ...]) -> Q:
    """Exact values in one IN (one index probe each); "billing.*" as a prefix."""
    exact = [v for v in values if not v.endswith("*")]
    found = [Q(**{f"{column}__in": exact})] if exact else []
    found += [Q(**{f"{column}__startswith": v[:-1]}) for v in values if v.endswith("*")]
    return _any(found)


def _children_of(parents: tuple[str, ...]) -> Q:
    """Jobs whose parent is one of `parents`. No index has parent_id, but a child shares
    its parent's root: the root's family (job_root_other) narrows the search, so it finds
    the children of parents still recorded (retention may have pruned a parent)."""
    roots = Job.objects.filter(task_id__in=parents).values("root_id")
    return Q(parent_id__in=parents) & Q(root_id__in=Subquery(roots)) & NOT_OWN_ROOT


def _argument(arg: ArgMatch) -> Q:
    """One argument compared as JSON. null means "no value" (no such argument or key,
    or JSON null), so -args.x:42 keeps the jobs that have no x, as an operator expects."""
    column = "args" if isinstance(arg.path[0], int) else "kwargs"
    keys = [str(part) for part in arg.path]
    container: str | KeyTransform = column
    for key in keys[:-1]:
        container = KeyTransform(key, container)
    value = KeyTransform(keys[-1], container)
    # SQL NULL for a missing key or a NULL column (->> on PostgreSQL, also for JSON null);
    # SQLite's JSON_EXTRACT spells JSON null as the text 'null', hence the second test.
    missing = Q(IsNull(KeyTextTransform(keys[-1], container), True)) | _equals(value, None)
    conditions = []
    if arg.values:
        conditions.append(_equal_to_any(value, arg.values, missing))
    if arg.excluded:
        given = [v for v in arg.excluded if v is not None]
        if None in arg.excluded:
            # Has a value, and not one of those: `~equal` alone is NULL (false) when missing.
            conditions.append(~missing & ~_equal_to_any(value, given, None) if given else ~missing)
        else:
            conditions.append(~_equal_to_any(value, given, None) | missing)
    return functools.reduce(operator.and_, conditions)


def _equal_to_any(value: KeyTransform, values: Sequence[Scalar], missing: Q | None) -> Q:
    found = [_equals(value, v) for v in values if v is not None]
    if missing is not None and None in values:
        found.append(missing)
    return _any(found)


def _equals(value: KeyTransform, json: Scalar) -> Q:
    exact = value.get_lookup("exact")
    assert exact is not None
    # A JSON Value: the lookup cannot know the column's type before the query resolves
    # it, and would compare the string "42" as the bare 42.
    return Q(exact(value, Value(json, JSONField())))
