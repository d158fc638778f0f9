"""bench.soak_plan: the schedule of faults and the command line. Pure."""

from __future__ import annotations

import pytest

from bench import soak_plan
from bench.soak_plan import Fault, schedule


def kinds(faults: list[Fault], kind: str) -> list[Fault]:
    return [f for f in faults if f.kind == kind]


def test_a_full_window_has_every_fault_in_time_order_within_it() -> None:
    faults = schedule(45.0, seed=23)
    assert faults == sorted(faults, key=lambda f: f.at)
    assert all(0 < f.at <= 45.0 + soak_plan.RESTART_AFTER_S for f in faults)
    assert [f.at for f in kinds(faults, "db-cut")] == [15.0, 30.0]
    assert [f.at for f in kinds(faults, "broker-kill")] == [round(0.45 * 45, 1)]
    pool = kinds(faults, "pool-kill")
    assert len(pool) == 4  # about every 10 s
    for k, fault in enumerate(pool, start=1):
        assert abs(fault.at - 10 * k) <= soak_plan.POOL_KILL_JITTER_S
        assert fault.worker in (0, 1)


def test_each_worker_is_killed_once_in_a_long_window_and_started_again() -> None:
    faults = schedule(45.0, seed=1)
    kills, starts = kinds(faults, "worker-kill"), kinds(faults, "worker-start")
    assert [f.worker for f in kills] == [0, 1]
    assert [f.worker for f in starts] == [0, 1]
    for kill, start in zip(kills, starts, strict=True):
        assert start.at == pytest.approx(kill.at + soak_plan.RESTART_AFTER_S)
    # Never both workers down at once, and never at the broker's kill.
    broker = kinds(faults, "broker-kill")[0].at
    assert starts[0].at < kills[1].at
    assert all(not (k.at <= broker <= s.at) for k, s in zip(kills, starts, strict=True))


def test_a_short_window_kills_one_worker() -> None:
    faults = schedule(25.0, seed=1)
    assert len(kinds(faults, "worker-kill")) == 1
    assert [f.at for f in kinds(faults, "db-cut")] == [15.0]
    assert len(kinds(faults, "broker-kill")) == 1


def test_the_schedule_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    assert schedule(45.0, seed=7) == schedule(45.0, seed=7)
    assert schedule(45.0, seed=7) != schedule(45.0, seed=8)


def test_the_shortest_window_still_kills_a_worker_and_the_broker() -> None:
    faults = schedule(10.0, seed=0)
    assert [f.kind for f in faults] == ["worker-kill", "broker-kill", "worker-start"]


def test_the_task_sleeps_so_the_pool_drains_in_most_of_the_window() -> None:
    seconds = soak_plan.task_seconds(2000, 45.0)
    slots = soak_plan.WORKERS * soak_plan.CONCURRENCY
    assert 2000 * seconds / slots == pytest.approx(soak_plan.DRAIN_FOR * 45.0, rel=0.01)
    assert soak_plan.task_seconds(10**7, 10.0) == soak_plan.MIN_TASK_SECONDS
    assert soak_plan.produce_seconds(45.0) < soak_plan.DRAIN_FOR * 45.0


def test_command_line_defaults_quick_and_choices() -> None:
    full = soak_plan.parse_args([])
    assert (full.n, full.window_s, full.databases, full.brokers) == (
        2000,
        45.0,
        ("sqlite", "postgresql"),
        ("no-persistence", "aof"),
    )
    quick = soak_plan.parse_args(["--quick"])
    assert (quick.n, quick.window_s, quick.databases, quick.brokers) == (
        300,
        25.0,
        ("sqlite",),
        ("no-persistence",),
    )
    chosen = soak_plan.parse_args(
        ["--quick", "--n", "50", "--brokers", "aof,no-persistence", "--databases", "postgresql"]
    )
    assert (chosen.n, chosen.brokers, chosen.databases) == (
        50,
        ("aof", "no-persistence"),
        ("postgresql",),
    )
    for wrong in (["--brokers", "rdb"], ["--n", "1"], ["--window", "5"], ["--databases", ""]):
        if wrong == ["--databases", ""]:
            assert soak_plan.parse_args(wrong).databases == ("sqlite", "postgresql")
            continue
        with pytest.raises(SystemExit):
            soak_plan.parse_args(wrong)
