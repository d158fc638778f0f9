"""bench.soak_report: what counts as lost, run more than once, recovered; the table. Pure."""

from __future__ import annotations

from bench.soak_report import JobFacts, exit_status, format_table, passed, tally


def job(
    status: str = "SUCCESS", runs: int = 1, dead: bool = False, recoveries: int = 0
) -> JobFacts:
    return JobFacts(status=status, dead_lettered=dead, recoveries=recoveries, runs=runs)


def test_every_job_final_and_run_once_passes() -> None:
    counts = tally([job() for _ in range(5)], enqueued=5)
    assert counts == {
        "jobs": 5,
        "succeeded": 5,
        "failed": 0,
        "lost": 0,
        "unfinished": 0,
        "more_than_once": 0,
        "dead_lettered": 0,
        "recovered": 0,
        "enqueued": 5,
        "no_row": 0,
    }
    assert passed(counts)


def test_lost_is_not_final_and_never_run_and_unfinished_is_not_final_but_run() -> None:
    facts = [
        job("SENT", runs=0),  # the broker lost its message
        job("RECEIVED", runs=0),
        job("PENDING", runs=0),  # never relayed
        job("SENT", runs=1),  # ran, its record never caught up: not lost work
        job("STARTED", runs=2),
        job("SUCCESS", runs=0),  # final: not lost, whatever the side count says
    ]
    counts = tally(facts, enqueued=6)
    assert counts["lost"] == 3
    assert counts["unfinished"] == 2
    assert counts["more_than_once"] == 1
    assert counts["succeeded"] == 1
    assert not passed(counts)


def test_an_enqueued_job_without_a_row_is_lost() -> None:
    counts = tally([job(), job()], enqueued=3)
    assert (counts["no_row"], counts["lost"]) == (1, 1)
    # More rows than returned calls (a call that raised after writing its row): no loss.
    assert tally([job(), job()], enqueued=1)["no_row"] == 0


def test_failed_dead_lettered_recovered_and_run_twice_are_counted_not_lost() -> None:
    facts = [
        job("FAILURE", runs=0, dead=True),
        job("SUCCESS", runs=2, recoveries=1),
        job("SUCCESS", runs=1, recoveries=2),
        job("REVOKED", runs=0),
    ]
    counts = tally(facts, enqueued=4)
    assert counts["failed"] == 1
    assert counts["dead_lettered"] == 1
    assert counts["recovered"] == 2
    assert counts["more_than_once"] == 1
    assert counts["lost"] == 0
    assert passed(counts)


def test_table_and_exit_status() -> None:
    good = {"database": "sqlite", "broker": "aof", **tally([job()] * 3, enqueued=3)}
    bad = {
        "database": "postgresql",
        "broker": "no-persistence",
        **tally([job(), job("SENT", runs=0)], enqueued=2),
    }
    broken = {"database": "postgresql", "broker": "aof", "error": "worker did not start"}
    lines = format_table([good, bad, broken]).splitlines()
    assert lines[0].split() == [
        "database",
        "broker",
        "jobs",
        "succeeded",
        "lost",
        "unfinished",
        "run",
        ">1",
        "dead-lettered",
        "recovered",
        "0",
        "lost",
    ]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["sqlite", "aof", "3", "3", "0", "0", "0", "0", "0", "PASS"]
    assert lines[3].split()[-1] == "FAIL"
    assert lines[3].split()[4] == "1"
    assert lines[4].split()[-1] == "FAIL"
    assert exit_status([good]) == 0
    assert exit_status([good, bad]) == 1
    assert exit_status([good, broken]) == 1
    assert exit_status([]) == 1
