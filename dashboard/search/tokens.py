"""Splitting a query into terms: `-key:value,"quoted value"` or a plain word.

Only this module knows the quoting rules, so reading (`tokenize`) and writing
(`quoted`) a query cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboard.search.errors import FilterError


@dataclass(frozen=True)
class Item:
    """One value of a term; `quoted` says the operator wrote it in double quotes
    (which makes `42` the string "42" in an args term)."""

    text: str
    quoted: bool
    position: int


@dataclass(frozen=True)
class Term:
    """`key` is None for a plain word, whose single item keeps any commas it has."""

    key: str | None
    items: tuple[Item, ...]
    negated: bool
    position: int


def tokenize(query: str) -> list[Term]:
    terms: list[Term] = []
    i = 0
    while True:
        while i < len(query) and query[i].isspace():
            i += 1
        if i >= len(query):
            return terms
        term, i = _term(query, i)
        terms.append(term)


def _term(query: str, start: int) -> tuple[Term, int]:
    i = start
    negated = query[i] == "-"
    if negated:
        i += 1
        if i >= len(query) or query[i].isspace():
            raise FilterError(
                'A "-" must be followed by a term to exclude, like -status:success', start
            )
    key: str | None = None
    items: list[Item] = []
    text: list[str] = []
    quoted = False
    item_start = i
    while i < len(query) and not query[i].isspace():
        char = query[i]
        if char == '"':
            value, i = _quoted(query, i)
            text.append(value)
            quoted = True
        elif char == ":" and key is None and not quoted:
            # The first colon ends the key; later ones belong to the value (10:00).
            key, text, item_start, i = "".join(text), [], i + 1, i + 1
        elif char == "," and key is not None:
            items.append(Item("".join(text), quoted, item_start))
            text, quoted, item_start, i = [], False, i + 1, i + 1
        else:
            text.append(char)
            i += 1
    items.append(Item("".join(text), quoted, item_start))
    return Term(key, tuple(items), negated, start), i


def _quoted(query: str, start: int) -> tuple[str, int]:
    """The text of the quoted string opening at `start`, and the offset after it.
    Inside quotes, \\" is a quote and \\\\ a backslash; other backslashes stay as they are
    (error texts quote Windows paths)."""
    out: list[str] = []
    i = start + 1
    while i < len(query):
        char = query[i]
        if char == "\\" and i + 1 < len(query) and query[i + 1] in '"\\':
            out.append(query[i + 1])
            i += 2
        elif char == '"':
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise FilterError(f"The quote opened at position {start} is never closed", start)


def quoted(value: str, *, word: bool = False, force: bool = False) -> str:
    """`value` as the tokenizer reads it back: quoted when it must be. A plain word
    must also hide a colon (it would become a key) and a leading "-" (a negation)."""
    special = not value or any(c.isspace() or c in '",' for c in value)
    if word:
        special = special or ":" in value or value.startswith("-")
    if not (special or force):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
