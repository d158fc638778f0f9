"""bench.transaction_floor really writes the layer's rows, and the ceiling follows from it.

A floor that silently inserted nothing would report a ceiling of 1.0 and excuse any
in-transaction figure; here the rows it reports are the ones its DELETEs counted. And it
must leave none behind: an outbox message left there is due, and the next worker to
start would publish it into a later round.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bench.processes import ROOT
from bench.report import transaction_ceiling
from bench.transaction_floor import BLOCKS

N = 40


def run(database: Path, *args: str) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "bench-test-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_floor_writes_one_job_and_one_outbox_row_per_transaction_and_deletes_them(
    tmp_path: Path,
) -> None:
    database = tmp_path / "floor.sqlite3"
    run(database, "manage.py", "migrate", "--no-input", "-v", "0")
    figures = json.loads(run(database, "-m", "bench.transaction_floor", "--n", str(N)))

    assert figures["vendor"] == "sqlite"
    assert figures["transaction_us"] > 0
    assert figures["rows_cost_us"] == pytest.approx(
        figures["transaction_with_rows_us"] - figures["transaction_us"]
    )
    with sqlite3.connect(database) as db:
        counts = [
            db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("tasks_job", "tasks_outboxmessage", "bench_order")
        ]
    with_rows = (BLOCKS + 1) * N  # the warm-up block writes rows too
    assert figures["rows_written"] == {"tasks_job": with_rows, "tasks_outboxmessage": with_rows}
    assert counts == [0, 0, with_rows + BLOCKS * N]


def test_the_ceiling_is_bare_time_over_bare_time_plus_the_rows() -> None:
    # Bare at 1000 calls/s is 1000 µs a call; rows of 250 µs cap the ratio at 0.8.
    assert transaction_ceiling(1000.0, {"rows_cost_us": 250.0}) == pytest.approx(0.8)
    assert transaction_ceiling(1000.0, {"rows_cost_us": -5.0}) == 1.0
