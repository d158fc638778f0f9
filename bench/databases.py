"""The bench's own PostgreSQL databases, created and dropped around a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

LOCAL_SERVER = "127.0.0.1:5432"


def redacted(url: str) -> str:
    """The URL without its password, for printing and for the results file."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def own_database(
    stamp: str, server: str = LOCAL_SERVER, *, optional: bool = False
) -> Iterator[str | None]:
    """A database of the bench's own on the PostgreSQL at `server` (trust auth, user
    postgres), dropped afterwards. With `optional`, None when no server answers."""
    try:
        import psycopg

        admin = psycopg.connect(
            f"postgresql://postgres@{server}/postgres", autocommit=True, connect_timeout=5
        )
    except Exception as exc:
        if not optional:
            raise
        print(f"bench: no PostgreSQL at {server} ({exc}); SQLite only", flush=True)
        yield None
        return
    name = f"bench_layer_{stamp.lower()}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgres://postgres@{server}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
