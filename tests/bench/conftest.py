"""Fixtures of the bench's tests against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bench.postgres import own_database


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of the test's own, migrated by the test when it needs the tables."""
    with own_database("bench_test") as url:
        yield url
