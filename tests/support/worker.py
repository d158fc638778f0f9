"""A real `celery worker` subprocess (prefork), started and stopped by tests."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from tests.support.process_group import stop_process_group

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
    app: Celery
    env: dict[str, str]
    log_path: Path
    # None: no -Q, the queues a worker consumes by default (the project's default
    # queue and Celery's own, `celery`: tasks.celery_defaults).
    queues: str | None = None
    concurrency: int = 2
    extra_args: tuple[str, ...] = ()
    name: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}@localhost")
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "project",
                "worker",
                "-P",
                "prefork",
                "-c",
                str(self.concurrency),
                *(("-Q", self.queues) if self.queues else ()),
                "-n",
                self.name,
                "-l",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                *self.extra_args,
            ],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_until_ready(timeout)
        return self

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited early; see {self.log_path}")
            if self.ping():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} not ready after {timeout}s; see {self.log_path}")

    def ping(self, timeout: float = 1.0) -> bool:
        replies: list[dict[str, Any]] = self.app.control.ping([self.name], timeout=timeout)
        return any(self.name in reply for reply in replies)

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        stop_process_group(self.process, timeout)
        self.process = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
