"""The bench tests' PostgreSQL: a database of a test's own on 127.0.0.1:5432 (skipped
when none answers), and the bench's Django commands run against it."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.processes import ROOT

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def own_database(prefix: str) -> Iterator[str]:
    """A new database, dropped afterwards; the test is skipped without a server."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, *args: str, marks: dict[str, str] | None = None) -> str:
    """`python <args>` with the production settings on the database at `url`; stdout."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BENCH_PRELOADED")},
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "bench-test-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "DATABASE_URL": url.replace("postgresql://", "postgres://", 1),
        **(marks or {}),
    }
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
