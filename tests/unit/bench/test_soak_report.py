"""bench.soak_report: what counts as lost, run more than once, recovered; the table. Pure."""

from __future__ import annotations

from bench.soak_report import JobFacts, exit_status, format_table, passed, tally


def job(
    status: str = "SUCCESS",
    runs: int = 1,
    dead: bool = False,
    recoveries: int = 0,
    in_transaction: bool = False,
) -> JobFacts:
    return JobFacts(status, dead, recoveries, runs, in_transaction)


def test_every_job_final_and_run_once_passes() -> None:
    counts = tally([job() for _ in range(5)])
    assert counts == {
        "jobs": 5,
        "succeeded": 5,
        "failed": 0,
        "lost": 0,
        "lost_in_transaction": 0,
        "lost_plain": 0,
        "no_row": 0,
        "unfinished": 0,
        "more_than_once": 0,
        "dead_lettered": 0,
        "recovered": 0,
    }
    assert passed(counts)


def test_lost_is_not_final_and_never_run_and_unfinished_is_not_final_but_run() -> None:
    facts = [
        job("SENT", runs=0),  # the broker lost its message
        job("RECEIVED", runs=0, in_transaction=True),
        job("PENDING", runs=0, in_transaction=True),  # never relayed
        job("SENT", runs=1),  # ran, its record never caught up: not lost work
        job("STARTED", runs=2),
        job("SUCCESS", runs=0),  # final: not lost, whatever the side count says
    ]
    counts = tally(facts)
    assert counts["lost"] == 3
    assert (counts["lost_in_transaction"], counts["lost_plain"]) == (2, 1)
    assert counts["unfinished"] == 2
    assert counts["more_than_once"] == 1
    assert counts["succeeded"] == 1
    assert not passed(counts)


def test_a_job_without_a_row_is_lost_unless_it_ran() -> None:
    counts = tally([job(), job("", runs=0), job("", runs=1)])
    assert counts["no_row"] == 2
    assert counts["lost"] == 1
    assert counts["lost_plain"] == 1
    assert counts["unfinished"] == 1


def test_failed_dead_lettered_recovered_and_run_twice_are_counted_not_lost() -> None:
    facts = [
        job("FAILURE", runs=0, dead=True),
        job("SUCCESS", runs=2, recoveries=1),
        job("SUCCESS", runs=1, recoveries=2),
        job("REVOKED", runs=0),
    ]
    counts = tally(facts)
    assert counts["failed"] == 1
    assert counts["dead_lettered"] == 1
    assert counts["recovered"] == 2
    assert counts["more_than_once"] == 1
    assert counts["lost"] == 0
    assert passed(counts)


def test_table_and_exit_status() -> None:
    good = {"database": "sqlite", "broker": "aof", **tally([job()] * 3)}
    bad = {
        "database": "postgresql",
        "broker": "no-persistence",
        **tally([job(), job("SENT", runs=0, in_transaction=True)]),
    }
    broken = {"database": "postgresql", "broker": "aof", "error": "worker did not start"}
    lines = format_table([good, bad, broken]).splitlines()
    assert lines[0].split() == [
        *("database", "broker", "jobs", "succeeded", "lost", "of", "which", "in", "tx"),
        *("no", "row", "unfinished", "run", ">1", "dead-lettered", "recovered", "0", "lost"),
    ]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["sqlite", "aof", "3", "3", *["0"] * 7, "PASS"]
    assert lines[3].split()[2:6] == ["2", "1", "1", "1"]
    assert lines[3].split()[-1] == "FAIL"
    assert lines[4].split()[-1] == "FAIL"
    assert exit_status([good]) == 0
    assert exit_status([good, bad]) == 1
    assert exit_status([good, broken]) == 1
    assert exit_status([]) == 1
