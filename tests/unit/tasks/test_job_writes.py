"""One writer per column family: every change of a Job row has one named place.

Status-owned columns are written by the recording service (tasks.record.service, whose
SQL is built by tasks.record.upsert; `.delay()`'s first row by tasks.publish.pending_rows).
Everything else is a named method of JobQuerySet in tasks/models.py. Pure: no database.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks.exceptions import JobWriteRefused
from tasks.models import Job

ROOT = Path(__file__).resolve().parents[3]
#: The files allowed to write job rows other than through JobQuerySet's named methods.
WRITERS = {
    "tasks/models.py",
    "tasks/record/service.py",
    "tasks/record/upsert.py",
    "tasks/publish/pending_rows.py",
}
ORM_WRITE = re.compile(
    r"\bJob\.objects\.(?:[\w().,=\[\]\" ]*\.)?"
    r"(create|bulk_create|get_or_create|update_or_create|bulk_update)\("
)
SQL_WRITE = re.compile(r"\b(INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\S+\s+SET)\b")


def sources() -> list[Path]:
    paths = [*(ROOT / "tasks").rglob("*.py"), *(ROOT / "dashboard").rglob("*.py")]
    return [p for p in paths if "migrations" not in p.parts]


def test_a_plain_update_of_job_rows_is_refused() -> None:
    with pytest.raises(JobWriteRefused, match="status"):
        Job.objects.filter(task_id="any").update(status="SUCCESS")


def test_a_plain_delete_of_job_rows_is_refused() -> None:
    with pytest.raises(JobWriteRefused):
        Job.objects.filter(task_id="any").delete()


def test_no_module_outside_the_writers_creates_job_rows_through_the_orm() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in sources()
        if str(path.relative_to(ROOT)) not in WRITERS
        for match in ORM_WRITE.finditer(path.read_text())
    ]
    assert offenders == []


def test_no_module_outside_the_writers_writes_the_job_table_in_sql() -> None:
    offenders = []
    for path in sources():
        if str(path.relative_to(ROOT)) in WRITERS:
            continue
        text = path.read_text()
        names_the_table = "Job._meta.db_table" in text or "tasklayer_job" in text
        if names_the_table and SQL_WRITE.search(text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_scan_finds_a_write_where_there_is_one() -> None:
    assert ORM_WRITE.search('Job.objects.filter(task_id="x").bulk_update(rows, ["error"])')
    assert ORM_WRITE.search("Job.objects.create(task_id='x')")
    assert not ORM_WRITE.search("Job.objects.filter(status='x').count()")
    assert SQL_WRITE.search('f"UPDATE {table} SET status = %s"')
    assert not SQL_WRITE.search("SELECT ... FOR UPDATE SKIP LOCKED")
