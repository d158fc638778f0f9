"""Simulated dashboards: CLIENTS operators, each refreshing the live fragments every 2 s.

Run by bench.dashboard_load as

    python -m bench.dashboards --base-url http://127.0.0.1:PORT --out FILE

with the layer's environment (its database): it logs CLIENTS sessions in (a superuser of
its own, one session each, through Django's test Client, so no password or login form
is involved), closes its database connection, fetches every fragment once per client
(the server's workers warm up), prints `ready`, and then polls until SIGTERM. Each
client is a browser tab on one of the live pages (the overview, Running, Failures, in
turn) and fetches that page's live fragment every INTERVAL_S seconds, as htmx would,
and an overview tab its charts every CHARTS_EVERY_S as the page's data-live-every asks
(20 tabs: 7 overviews, 7 Running, 6 Failures); the clients start
spread over the interval, as tabs opened at different moments are.

On SIGTERM it writes every request to FILE as [start (CLOCK_MONOTONIC, system-wide on
Linux, so the bench can cut out the drain's window), milliseconds, HTTP status or 0 for
no answer, path], prints `done` and exits: `summarize` counts them.

The requests are plain HTTP to the server the bench started; `X-Forwarded-Proto: https`
stands for the TLS proxy production settings expect in front of gunicorn.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.figures import percentile

CLIENTS = 20
INTERVAL_S = 2.0
FRAGMENTS = ("/dashboard/live/", "/dashboard/running/live/", "/dashboard/failures/live/")
OVERVIEW = FRAGMENTS[0]
#: Each dashboard is a browser tab showing one page, which refreshes that page's live
#: fragment: the tabs are spread over the three live pages, the overview first.
#: The overview's charts: a browser re-fetches them at most once a minute
#: (data-live-every="60" on the page), so each client does too.
CHARTS = "/dashboard/live/charts/"
CHARTS_EVERY_S = 60.0
TIMEOUT_S = 10.0
USERNAME = "bench-dashboards"

Request = tuple[float, float, int, str]  # start (monotonic s), ms, status (0: none), path


def sessions(count: int) -> tuple[str, list[str]]:
    """(the session cookie's name, `count` logged-in session keys of a superuser)."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username=USERNAME, defaults={"is_staff": True, "is_superuser": True}
    )
    keys = []
    for _ in range(count):
        client = Client()
        client.force_login(user)
        keys.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    connections.close_all()  # the pollers only speak HTTP
    return settings.SESSION_COOKIE_NAME, keys


def page_of(number: int) -> str:
    """The live fragment tab `number` refreshes: the live pages in turn."""
    return FRAGMENTS[number % len(FRAGMENTS)]


def fetch(host: str, port: int, path: str, cookie: str) -> int:
    """One GET as htmx makes it; the HTTP status, 0 when no answer came."""
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request(
            "GET",
            path,
            headers={"Cookie": cookie, "X-Forwarded-Proto": "https", "HX-Request": "true"},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        conn.close()


class Dashboards:
    """The polling clients and the requests they made."""

    def __init__(self, base_url: str, cookies: Sequence[str], interval: float) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookies = list(cookies)
        self.interval = interval
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[Request] = []

    def one_round(self, cookie: str, paths: Sequence[str]) -> list[int]:
        statuses = []
        for path in paths:
            started = time.monotonic()
            status = fetch(self.host, self.port, path, cookie)
            elapsed_ms = (time.monotonic() - started) * 1000
            statuses.append(status)
            with self.lock:
                self.requests.append((started, elapsed_ms, status, path))
        return statuses

    def warm_up(self) -> list[int]:
        """Every fragment once per client, before `ready`, so the server's workers are
        warm; not kept."""
        everything = (*FRAGMENTS, CHARTS)
        statuses = [
            status for cookie in self.cookies for status in self.one_round(cookie, everything)
        ]
        with self.lock:
            self.requests.clear()
        return statuses

    def client(self, number: int) -> None:
        cookie, page = self.cookies[number], page_of(number)
        # Tabs opened at different moments: spread over one interval.
        if self.stop.wait(self.interval * number / len(self.cookies)):
            return
        due = time.monotonic()
        charts_due = due + CHARTS_EVERY_S  # drawn with the page the tab opened
        while not self.stop.is_set():
            paths = [page]
            if page == OVERVIEW and time.monotonic() >= charts_due:
                paths.append(CHARTS)
                charts_due += CHARTS_EVERY_S
            self.one_round(cookie, paths)
            # Like setInterval: the next refresh is due an interval after the last one
            # was due, without a burst to catch up when the server fell behind.
            due = max(due + self.interval, time.monotonic())
            self.stop.wait(due - time.monotonic())

    def start(self) -> None:
        for number in range(len(self.cookies)):
            threading.Thread(target=self.client, args=(number,), daemon=True).start()

    def taken(self) -> list[Request]:
        with self.lock:
            return list(self.requests)


def summarize(requests: Sequence[Request], start: float, end: float) -> dict[str, Any]:
    """The requests that started within [start, end] (the drain): how many, how many
    failed (anything but 200, or no answer), their rate and latency."""
    inside = [r for r in requests if start <= r[0] <= end]
    errors = [r for r in inside if r[2] != 200]
    latencies = [r[1] for r in inside]
    statuses: dict[str, int] = {}
    for r in errors:
        statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
    seconds = max(end - start, 1e-9)
    return {
        "dashboard_requests": len(inside),
        "dashboard_errors": len(errors),
        "dashboard_error_statuses": statuses,
        "dashboard_requests_per_s": len(inside) / seconds,
        "dashboard_p50_ms": percentile(latencies, 50) if latencies else 0.0,
        "dashboard_p95_ms": percentile(latencies, 95) if latencies else 0.0,
        "dashboard_max_ms": max(latencies) if latencies else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--interval", type=float, default=INTERVAL_S)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopped.set())
    name, keys = sessions(args.clients)
    dashboards = Dashboards(args.base_url, [f"{name}={key}" for key in keys], args.interval)
    warm = dashboards.warm_up()
    print(f"ready clients={args.clients} warm-up statuses={sorted(set(warm))}", flush=True)
    dashboards.start()
    while not stopped.wait(0.1):  # a short wait: the handler runs between waits
        pass
    dashboards.stop.set()
    requests = dashboards.taken()
    args.out.write_text(json.dumps(requests))
    print(f"done requests={len(requests)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
