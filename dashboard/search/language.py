"""The jobs explorer's filter language, parsed into a `JobFilter` and printed back.

    status:failure,revoked task:billing.* -queue:low after:2h error:"Timeout after 30s"
    args.account_id:42 args.0:"x" dead:yes recovered:yes some-task-id invoice

Terms are separated by spaces and all must hold; commas give a key alternatives (so does
repeating the key); a leading "-" excludes; a plain word matches a task id exactly or a
task name containing it. No ORM here: dashboard.search.jobs turns a JobFilter into a
query, so the language is tested without a database.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from typing import Any, TypeVar

from django.utils import timezone

from dashboard.search.errors import FilterError
from dashboard.search.times import HINT, TimeBound, parse_time
from dashboard.search.tokens import Item, Term, quoted, tokenize

__all__ = ["KEYS", "STATUSES", "ArgMatch", "FilterError", "JobFilter", "OneOf", "parse"]

# tasks.models.JobStatus's values, spelt out so this module needs no model import (a unit
# test checks that they agree).
STATUSES = ("PENDING", "SENT", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED")

# Keys with any number of values -> the JobFilter field that holds them.
LIST_KEYS = {
    "status": "status",
    "task": "task",
    "queue": "queue",
    "worker": "worker",
    "error": "error",
    "correlation": "correlation",
    "batch": "batch",
    "root": "root",
    "parent": "parent",
    "id": "task_id",
    "fingerprint": "fingerprint",
}
PATTERN_KEYS = ("task", "queue", "worker")  # a trailing * makes a prefix
TIME_KEYS = ("after", "before")
FLAG_KEYS = ("dead", "retried")
#: yes/no like a flag, or a time: published again by the layer at or after it.
FLAG_OR_TIME_KEYS = ("recovered",)
ARG_PREFIXES = ("args", "kwargs")
#: Keys given at most once, with one value.
SINGLE_KEYS = TIME_KEYS + FLAG_KEYS + FLAG_OR_TIME_KEYS
# The order of the keys in the help text, the error messages and a canonical query.
KEYS = (
    "status",
    "task",
    "queue",
    "worker",
    "after",
    "before",
    "error",
    "args.<key>",
    "kwargs.<key>",
    "correlation",
    "batch",
    "root",
    "parent",
    "id",
    "fingerprint",
    "dead",
    "retried",
    "recovered",
)
KNOWN = [k for k in KEYS if "<" not in k]
NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
YES_NO = {"yes": True, "true": True, "no": False, "false": False}

T = TypeVar("T")
Scalar = str | int | float | bool | None
"""An argument value to compare with, as JSON: a string, number, true, false or null."""


@dataclass(frozen=True)
class OneOf:
    """A job matches when its value is one of `values` (if any) and none of `excluded`."""

    values: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArgMatch:
    """One argument, compared as JSON. `path` starts with an int for a positional
    argument (args.0 is the first), with a keyword's name otherwise; more segments go
    into nested objects (args.user.plan)."""

    path: tuple[str | int, ...]
    values: tuple[Scalar, ...] = ()
    excluded: tuple[Scalar, ...] = ()

    @property
    def key(self) -> str:
        return "args." + ".".join(str(part) for part in self.path)


@dataclass(frozen=True)
class JobFilter:
    """What an explorer query asks for; the empty filter matches every job.

    `after` is inclusive and `before` exclusive, both on the job's creation time.
    `dead`: parked as a dead letter and not yet replayed or purged. `retried`: an
    operator retried or replayed the job (a rerun of it exists). `recovered`: the layer
    published the job again because the broker lost it (True/False), or did so at or
    after a time (a TimeBound on the job's `recovered_at`).
    """

    words: tuple[str, ...] = ()
    not_words: tuple[str, ...] = ()
    status: OneOf = OneOf()
    task: OneOf = OneOf()
    queue: OneOf = OneOf()
    worker: OneOf = OneOf()
    after: TimeBound | None = None
    before: TimeBound | None = None
    error: OneOf = OneOf()
    args: tuple[ArgMatch, ...] = ()
    correlation: OneOf = OneOf()
    batch: OneOf = OneOf()
    root: OneOf = OneOf()
    parent: OneOf = OneOf()
    task_id: OneOf = OneOf()
    fingerprint: OneOf = OneOf()
    dead: bool | None = None
    retried: bool | None = None
    recovered: bool | TimeBound | None = None

    def to_query(self) -> str:
        """The canonical query for this filter: keys in a fixed order, one term per key
        and side; parse(f.to_query()) == f."""
        parts = [quoted(w, word=True) for w in self.words]
        parts += ["-" + quoted(w, word=True) for w in self.not_words]
        for key in KEYS:
            if key in LIST_KEYS:
                one_of: OneOf = getattr(self, LIST_KEYS[key])
                show = str.lower if key == "status" else str
                parts += _terms(key, [quoted(show(v)) for v in one_of.values], "")
                parts += _terms(key, [quoted(show(v)) for v in one_of.excluded], "-")
            elif key in TIME_KEYS and (bound := getattr(self, key)) is not None:
                parts.append(f"{key}:{quoted(bound.text)}")
            elif key in FLAG_KEYS and (flag := getattr(self, key)) is not None:
                parts.append(f"{key}:{'yes' if flag else 'no'}")
            elif key in FLAG_OR_TIME_KEYS and (value := getattr(self, key)) is not None:
                text = ("yes" if value else "no") if isinstance(value, bool) else value.text
                parts.append(f"{key}:{quoted(text)}")
            elif key == "args.<key>":
                for arg in self.args:
                    parts += _terms(arg.key, [_json_text(v) for v in arg.values], "")
                    parts += _terms(arg.key, [_json_text(v) for v in arg.excluded], "-")
        return " ".join(parts)

    def with_term(
        self,
        key: str,
        *values: Scalar | datetime,
        negated: bool = False,
        now: datetime | None = None,
    ) -> JobFilter:
        """This filter with `key` (one side of it: excluded values when `negated`) set to
        exactly `values`; no values removes that side. For the links other pages build:
        JobFilter().with_term("status", "failure").with_term("after", moment)."""
        if not values:
            return self._cleared(key, negated)
        text = ",".join(_value_text(key, v) for v in values)
        new = parse(("-" if negated else "") + f"{key}:{text}", now=now)
        if key.lower() in LIST_KEYS:
            name = LIST_KEYS[key.lower()]
            old, added = getattr(self, name), getattr(new, name)
            side = "excluded" if negated else "values"
            return replace(self, **{name: replace(old, **{side: getattr(added, side)})})
        if key.lower() in SINGLE_KEYS:
            return replace(self, **{key.lower(): getattr(new, key.lower())})
        return replace(self, args=_merge_args(self.args, new.args))

    def without(self, key: str) -> JobFilter:
        """This filter with nothing on `key` (both sides)."""
        return self._cleared(key, False)._cleared(key, True)

    def _cleared(self, key: str, negated: bool) -> JobFilter:
        lower = key.lower()
        if lower in LIST_KEYS:
            name = LIST_KEYS[lower]
            side = "excluded" if negated else "values"
            return replace(self, **{name: replace(getattr(self, name), **{side: ()})})
        if lower in SINGLE_KEYS:
            unset: dict[str, Any] = {lower: None}  # Any: the field is named at run time
            return replace(self, **unset)
        if not _is_arg_key(lower):
            raise FilterError(_unknown_key(key), 0)
        path = _path(key, 0)
        kept = []
        for arg in self.args:
            if arg.path == path:
                arg = replace(arg, **{"excluded" if negated else "values": ()})
            if arg.values or arg.excluded:
                kept.append(arg)
        return replace(self, args=tuple(kept))


def parse(query: str, *, now: datetime | None = None, tz: tzinfo | None = None) -> JobFilter:
    """The filter `query` asks for. Relative times count back from `now` (default: the
    current time); dates and times without an offset are in `tz` (default: Django's
    current time zone). Raises FilterError."""
    draft = _Draft(now or timezone.now(), tz or timezone.get_current_timezone())
    for term in tokenize(query):
        draft.add(term)
    return draft.build()


@dataclass
class _Draft:
    """The terms read so far, in order; `build` freezes them into a JobFilter."""

    now: datetime
    tz: tzinfo
    lists: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    args: dict[tuple[str | int, ...], tuple[list[Scalar], list[Scalar]]] = field(
        default_factory=dict
    )
    times: dict[str, TimeBound] = field(default_factory=dict)
    flags: dict[str, bool | TimeBound] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)

    def add(self, term: Term) -> None:
        if term.key is None:
            word = term.items[0]
            if not word.text:
                raise FilterError('An empty word ("") matches nothing; remove it', word.position)
            self._list("words", term.negated).append(word.text)
            return
        key = term.key.lower()
        if key in LIST_KEYS:
            target = self._list(LIST_KEYS[key], term.negated)
            target.extend(_list_value(key, item) for item in term.items)
        elif key in SINGLE_KEYS:
            self._single(key, term)
        elif _is_arg_key(key):
            path = _path(term.key, term.position)
            values, excluded = self.args.setdefault(path, ([], []))
            (excluded if term.negated else values).extend(_json_value(i) for i in term.items)
        else:
            raise FilterError(_unknown_key(term.key), term.position)

    def _list(self, name: str, negated: bool) -> list[str]:
        values, excluded = self.lists.setdefault(name, ([], []))
        return excluded if negated else values

    def _single(self, key: str, term: Term) -> None:
        if key in self.positions:
            raise FilterError(f"{key}: is given twice; keep one", term.position)
        if len(term.items) > 1:
            raise FilterError(f"{key}: takes one value", term.items[1].position)
        item = term.items[0]
        if not item.text:
            raise FilterError(f"{key}: needs a value ({_example(key)})", item.position)
        if key in TIME_KEYS:
            if term.negated:
                other = "before" if key == "after" else "after"
                raise FilterError(f"-{key}: cannot be negated; use {other}: instead", term.position)
            try:
                self.times[key] = parse_time(item.text, self.now, self.tz)
            except (ValueError, OverflowError):
                raise FilterError(f'{key}: "{item.text}" is not {HINT}', item.position) from None
        elif key in FLAG_OR_TIME_KEYS and item.text.lower() not in YES_NO:
            if term.negated:
                raise FilterError(
                    f"-{key}: cannot be negated with a time; use {key}:no", term.position
                )
            try:
                self.flags[key] = parse_time(item.text, self.now, self.tz)
            except (ValueError, OverflowError):
                raise FilterError(
                    f'{key}: takes yes, no or a time ({HINT}), not "{item.text}"', item.position
                ) from None
        else:
            flag = YES_NO.get(item.text.lower())
            if flag is None:
                raise FilterError(f'{key}: takes yes or no, not "{item.text}"', item.position)
            self.flags[key] = flag != term.negated
        self.positions[key] = term.position

    def build(self) -> JobFilter:
        result = JobFilter(
            words=self._unique("words")[0],
            not_words=self._unique("words")[1],
            status=self._one_of("status"),
            task=self._one_of("task"),
            queue=self._one_of("queue"),
            worker=self._one_of("worker"),
            after=self.times.get("after"),
            before=self.times.get("before"),
            error=self._one_of("error"),
            args=tuple(
                ArgMatch(path, _unique(values), _unique(excluded))
                for path, (values, excluded) in self.args.items()
            ),
            correlation=self._one_of("correlation"),
            batch=self._one_of("batch"),
            root=self._one_of("root"),
            parent=self._one_of("parent"),
            task_id=self._one_of("task_id"),
            fingerprint=self._one_of("fingerprint"),
            dead=self._flag("dead"),
            retried=self._flag("retried"),
            recovered=self.flags.get("recovered"),
        )
        if result.after and result.before and result.after.moment >= result.before.moment:
            raise FilterError(
                f"after:{result.after.text} is not earlier than before:{result.before.text},"
                " so no job can match",
                self.positions["before"],
            )
        return result

    def _flag(self, key: str) -> bool | None:
        flag = self.flags.get(key)
        assert flag is None or isinstance(flag, bool)  # only FLAG_OR_TIME_KEYS hold times
        return flag

    def _unique(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        values, excluded = self.lists.get(name, ([], []))
        return _unique(values), _unique(excluded)

    def _one_of(self, name: str) -> OneOf:
        return OneOf(*self._unique(name))


def _list_value(key: str, item: Item) -> str:
    text = item.text
    if not text:
        raise FilterError(f"{key}: needs a value ({_example(key)})", item.position)
    if key == "status":
        status = text.upper()
        if status not in STATUSES:
            valid = ", ".join(s.lower() for s in STATUSES)
            raise FilterError(
                f'status: "{text}" is not a status{_did_you_mean(text.lower(), STATUSES)}.'
                f" Statuses: {valid}",
                item.position,
            )
        return status
    if key in PATTERN_KEYS and "*" in text[:-1]:
        raise FilterError(
            f"{key}: only a trailing * is supported (a prefix, like {key}:billing.*)",
            item.position + text.index("*"),
        )
    return text


def _is_arg_key(key: str) -> bool:
    prefix, dot, _ = key.partition(".")
    return bool(dot) and prefix.lower() in ARG_PREFIXES


def _path(key: str, position: int) -> tuple[str | int, ...]:
    """args.account_id -> ("account_id",); args.0 -> (0,); kwargs.user.plan -> ("user", "plan")."""
    prefix, _, rest = key.partition(".")
    segments = rest.split(".")
    first = segments[0]
    if not all(segments) or not (first.isdigit() or IDENTIFIER.fullmatch(first)):
        raise FilterError(
            f"{key}: name an argument, like {prefix}.account_id (a keyword argument)"
            f" or args.0 (the first positional argument)",
            position,
        )
    if first.isdigit():
        if prefix.lower() != "args":
            raise FilterError(f"{key}: a position needs args. (args.{first})", position)
        return (int(first), *segments[1:])
    return tuple(segments)


def _json_value(item: Item) -> Scalar:
    """An argument value as JSON: quoted is always a string; bare true, false, null and
    numbers are those; anything else bare is a string."""
    text = item.text
    if item.quoted:
        return text
    if text in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[text]
    if NUMBER.fullmatch(text):
        number: int | float = json.loads(text)
        return number
    if not text:
        raise FilterError("args: needs a value (args.account_id:42)", item.position)
    return text


def _json_text(value: Scalar) -> str:
    if isinstance(value, str):
        literal = value in ("true", "false", "null") or NUMBER.fullmatch(value) is not None
        return quoted(value, force=literal)
    return json.dumps(value)


def _value_text(key: str, value: Scalar | datetime) -> str:
    """A Python value as with_term's caller means it, spelt as the query would."""
    lower = key.lower()
    if isinstance(value, datetime):
        return quoted(TimeBound.at(value).text)
    if lower in FLAG_KEYS + FLAG_OR_TIME_KEYS and isinstance(value, bool):
        return "yes" if value else "no"
    if lower in LIST_KEYS or lower in SINGLE_KEYS:
        return quoted(str(value))
    return _json_text(value)


def _merge_args(args: tuple[ArgMatch, ...], new: tuple[ArgMatch, ...]) -> tuple[ArgMatch, ...]:
    """`args` with the one match in `new` in place of the same argument's sides (the
    term stays where it was in the query), or added at the end."""
    (added,) = new
    if all(arg.path != added.path for arg in args):
        return (*args, added)
    return tuple(
        ArgMatch(arg.path, added.values or arg.values, added.excluded or arg.excluded)
        if arg.path == added.path
        else arg
        for arg in args
    )


def _terms(key: str, texts: list[str], sign: str) -> list[str]:
    return [f"{sign}{key}:{','.join(texts)}"] if texts else []


def _unique(values: Sequence[T]) -> tuple[T, ...]:
    # Order kept (the canonical query reads as typed). Compared with their types, since
    # 1 == True == 1.0 in Python but not in JSON.
    seen: list[tuple[type, object]] = []
    out: list[T] = []
    for value in values:
        if (type(value), value) not in seen:
            seen.append((type(value), value))
            out.append(value)
    return tuple(out)


def _unknown_key(key: str) -> str:
    lower = key.lower()
    hint = _did_you_mean(lower, KNOWN)
    return (
        f'"{key}:" is not a key{hint}. Keys: {", ".join(KEYS)}.'
        ' To search for text with a colon, put it in double quotes ("a:b").'
    )


def _did_you_mean(text: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(text, [c.lower() for c in choices], n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _example(key: str) -> str:
    return {
        "after": "after:2026-12-06T10:00 or after:2h",
        "before": "before:2026-12-07 or before:15m",
        "dead": "dead:yes",
        "retried": "retried:yes",
        "recovered": "recovered:yes or recovered:2026-12-06T10:42",
        "status": "status:failure",
        "task": "task:billing.*",
    }.get(key, f"{key}:value")
