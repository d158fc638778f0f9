"""The dashboards-during-drain line: what the pollers count, and the verdict it makes.

Pure: requests as the pollers record them, per-round figures in, lines out.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bench import dashboards, report
from bench.options import parse_run_args


def test_only_the_requests_started_during_the_drain_count() -> None:
    requests = [
        (9.9, 5.0, 200, "/dashboard/live/"),  # before the drain
        (10.0, 10.0, 200, "/dashboard/live/"),
        (11.0, 30.0, 500, "/dashboard/running/live/"),
        (12.0, 20.0, 0, "/dashboard/failures/live/"),  # no answer
        (14.0, 40.0, 200, "/dashboard/live/"),
        (14.1, 1.0, 501, "/dashboard/live/"),  # after
    ]
    found = dashboards.summarize(requests, start=10.0, end=14.0)
    assert found["dashboard_requests"] == 4
    assert found["dashboard_errors"] == 2
    assert found["dashboard_error_statuses"] == {"500": 1, "0": 1}
    assert found["dashboard_requests_per_s"] == 1.0
    assert found["dashboard_p50_ms"] == 20.0
    assert found["dashboard_max_ms"] == 40.0


def test_no_request_in_the_window_is_zeros_not_an_error() -> None:
    found = dashboards.summarize([], start=0.0, end=1.0)
    assert found["dashboard_requests"] == 0
    assert found["dashboard_p95_ms"] == 0.0


def test_the_warm_up_fetches_every_fragment_and_a_round_what_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetched: list[tuple[str, int, str, str]] = []

    def fake_fetch(host: str, port: int, path: str, cookie: str) -> int:
        fetched.append((host, port, path, cookie))
        return 200

    monkeypatch.setattr(dashboards, "fetch", fake_fetch)
    polling = dashboards.Dashboards("http://127.0.0.1:8123", ["sessionid=a", "sessionid=b"], 2.0)
    assert polling.warm_up() == [200] * 8  # every fragment and the charts, per client
    assert polling.taken() == []  # the warm-up is not counted
    assert [f[2] for f in fetched[:4]] == [*dashboards.FRAGMENTS, dashboards.CHARTS]
    assert {f[:2] for f in fetched} == {("127.0.0.1", 8123)}
    assert {f[3] for f in fetched} == {"sessionid=a", "sessionid=b"}
    assert polling.one_round("sessionid=a", ["/dashboard/live/"]) == [200]
    assert [r[3] for r in polling.taken()] == ["/dashboard/live/"]


def test_twenty_tabs_are_spread_over_the_three_live_pages() -> None:
    pages = [dashboards.page_of(n) for n in range(dashboards.CLIENTS)]
    assert {page: pages.count(page) for page in dashboards.FRAGMENTS} == {
        "/dashboard/live/": 7,
        "/dashboard/running/live/": 7,
        "/dashboard/failures/live/": 6,
    }


def test_clients_stop_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboards, "fetch", lambda *args: 200)
    polling = dashboards.Dashboards("http://127.0.0.1:1", ["c"], 0.01)
    thread = threading.Thread(target=polling.client, args=(0,))
    thread.start()
    polling.stop.wait(0.1)
    polling.stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert len(polling.taken()) >= 1


def runs(ratios: list[float], errors: int = 0, requests: int = 900) -> list[dict[str, Any]]:
    """Rounds of bare (100/s), layer (90/s) and layer with dashboards (100 * ratio /s)."""
    found: list[dict[str, Any]] = []
    for number, ratio in enumerate(ratios, start=1):
        common = {"round": number, "enqueue_per_s": 1000.0, "lag_p95_ms": 100.0}
        found += [
            {**common, "side": "bare", "drain_per_s": 100.0},
            {**common, "side": "layer", "drain_per_s": 90.0},
            {
                **common,
                "side": "layer-dashboards",
                "drain_per_s": 100.0 * ratio,
                "dashboard_requests": requests,
                "dashboard_errors": errors,
                "dashboard_p95_ms": 30.0,
                "dashboard_server_cores": 0.2,
            },
        ]
    return found


def lines(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    entry = {"runs": found, "ratios_layer_over_bare": report.ratios(found)}
    return {
        line["figure"].split(" (")[0]: line
        for line in report.targets({"SQLite": entry}, None)
        if line["figure"].startswith("drain ratio")
    }


def test_the_line_is_the_median_of_per_round_ratios_at_the_drain_target() -> None:
    found = lines(runs([0.80, 0.90, 0.86]))
    line = found["drain ratio, 20 dashboards polling every 2 s"]
    assert line["value"] == pytest.approx(0.86)
    assert line["target"] == f">= {report.DRAIN_TARGET}"
    assert line["pass"] is True
    assert "2,700 requests, 0 errors; p95 30 ms, server 0.20 cores), SQLite" in line["figure"]
    assert found["drain ratio, SQLite"]["value"] == pytest.approx(0.90)


def test_the_cost_of_the_dashboards_to_the_layer_is_reported_beside() -> None:
    found = report.targets(
        {"SQLite": {"runs": runs([0.81]), "ratios_layer_over_bare": report.ratios(runs([0.81]))}},
        None,
    )
    line = next(v for v in found if v["figure"].startswith("layer drain with the dashboards"))
    assert line["value"] == pytest.approx(0.90)  # 81 / 90
    assert line["target"] == "reported"


def test_errors_or_no_requests_fail_the_line_whatever_the_ratio() -> None:
    with_errors = lines(runs([1.0], errors=3))["drain ratio, 20 dashboards polling every 2 s"]
    assert with_errors["pass"] is False
    assert "3 errors" in with_errors["figure"]
    silent = lines(runs([1.0], requests=0))["drain ratio, 20 dashboards polling every 2 s"]
    assert silent["pass"] is False


def test_a_slow_drain_with_dashboards_fails() -> None:
    line = lines(runs([0.80]))["drain ratio, 20 dashboards polling every 2 s"]
    assert line["pass"] is False


def test_make_bench_runs_the_dashboards_round_unless_told_not_to() -> None:
    assert parse_run_args([]).dashboards is True
    assert parse_run_args(["--no-dashboards"]).dashboards is False
