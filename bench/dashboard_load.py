"""Twenty dashboards refreshing every 2 s against the database a drain is writing.

Issue 21: "Twenty dashboards refreshing every 2 s while `make bench` drains must not
push the drain ratio below its target." `DashboardLoad` is that load, started before a
layer drain and stopped after it (bench.rounds' `dashboards_round`):

- the project's WSGI app under gunicorn, as deployed (the Dockerfile's command: three
  sync workers), with the layer's settings and database, on a free local port;
- bench.dashboards in a process of its own: CLIENTS logged-in sessions, each fetching
  the overview's, Running's and Failures' live fragments every 2 s.

Both run on the same two cores as the worker being timed, as they would on a small
deployment. `summary` cuts the pollers' requests to the drain's window and adds the
server's CPU time over it, so the table shows what the load was, not only that it ran.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from bench import dashboards, processes
from devstack.redis_server import free_port

GUNICORN_WORKERS = 3  # the Dockerfile's and docker-compose's
READY_TIMEOUT_S = 120.0


def answers(port: int) -> bool:
    """Whether the server answers HTTP at all (a login redirect will do)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/dashboard/live/", headers={"X-Forwarded-Proto": "https"})
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


class DashboardLoad:
    """The server and the polling dashboards, for the length of a `with` block."""

    def __init__(self, env: dict[str, str], logs: Path, label: str) -> None:
        self.env = {**env, "ALLOWED_HOSTS": "127.0.0.1"}
        self.logs = logs
        self.label = label
        self.port = free_port()
        self.out = logs / f"dashboards-{label}.json"
        self.server: subprocess.Popen[str] | None = None
        self.pollers: subprocess.Popen[str] | None = None
        self.server_cpu_at_start = 0.0
        self.server_cpu_since = 0.0

    def __enter__(self) -> DashboardLoad:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        self.server = processes.start(
            [
                *("-m", "gunicorn", "project.wsgi:application"),
                *("--bind", f"127.0.0.1:{self.port}", "--workers", str(GUNICORN_WORKERS)),
            ],
            self.env,
            self.logs / f"dashboard-server-{self.label}.log",
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not answers(self.port):
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the dashboard server did not answer; see {self.logs}/dashboard-server-"
                    f"{self.label}.log"
                )
            time.sleep(0.2)
        self.out.unlink(missing_ok=True)
        self.pollers = processes.start(
            [
                *("-m", "bench.dashboards", "--base-url", f"http://127.0.0.1:{self.port}"),
                *("--out", str(self.out)),
            ],
            self.env,
            self.logs / f"dashboards-{self.label}.log",
            stdout=subprocess.PIPE,
        )
        lines = processes.line_reader(self.pollers)
        try:
            line = lines.get(timeout=READY_TIMEOUT_S)
        except Exception:
            line = None
        if not line or not line.startswith("ready "):
            raise RuntimeError(f"the dashboards did not start ({line!r}); see {self.logs}")
        self.server_cpu_at_start = sum(processes.group_cpu_seconds(self.server.pid))
        self.server_cpu_since = time.monotonic()

    def summary(self, start: float, end: float) -> dict[str, Any]:
        """Stop the pollers; their requests within [start, end] and the server's CPU."""
        if self.server is None or self.pollers is None:
            raise RuntimeError("the dashboards are not running")
        server_cpu = sum(processes.group_cpu_seconds(self.server.pid)) - self.server_cpu_at_start
        # Over its own window: from the pollers' `ready` (just before the drain) to now.
        server_cores = server_cpu / max(time.monotonic() - self.server_cpu_since, 1e-9)
        processes.stop(self.pollers)  # SIGTERM: they write their requests and exit
        self.pollers = None
        if not self.out.exists():
            raise RuntimeError(f"the dashboards wrote no requests; see {self.logs}")
        requests = [tuple(r) for r in json.loads(self.out.read_text())]
        found = dashboards.summarize(requests, start, end)  # type: ignore[arg-type]
        found["dashboard_server_cores"] = server_cores
        return found

    def close(self) -> None:
        for process in (self.pollers, self.server):
            if process is not None:
                with contextlib.suppress(Exception):
                    processes.stop(process)
        self.pollers = self.server = None
