"""A Django project that is not this repository's: its own virtualenv, files and processes.

Every command runs with the virtualenv's executables, from the project's directory, in
an environment that carries nothing of the test session's configuration
(DJANGO_SETTINGS_MODULE=tests.settings, DATABASE_URL, CELERY_*, TASKS_*, PYTHONPATH):
the adopter's settings.py is all the layer gets. Each command's output goes to a log
file of its own.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.process_group import stop_process_group

# What a shell on this machine needs, nothing else.
_PASSED_ENV = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TERM", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
_READY = re.compile(r"@\S+ ready\.\s*$", re.MULTILINE)
_OUTCOME_MARK = "ACCEPTANCE-OUTCOME "


class CommandFailed(AssertionError):
    """A command of the foreign project exited non-zero; its log says why."""


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _shown(argv: list[str]) -> str:
    """The command for a message: a long argument (a `shell -c` program) cut short."""
    return shlex.join(arg if len(arg) <= 80 else f"{arg[:40]}...({len(arg)} chars)" for arg in argv)


def run(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout: float) -> str:
    """Run to completion; the output (stdout and stderr) is returned and logged."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        completed = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else ""
        log.write_text(f"$ {shlex.join(argv)}\n(cwd {cwd})\n\n{output}\n[timed out]\n")
        raise CommandFailed(f"{_shown(argv)} took over {timeout}s; see {log}") from exc
    elapsed = time.monotonic() - started
    log.write_text(
        f"$ {shlex.join(argv)}\n(cwd {cwd}; exit {completed.returncode}; {elapsed:.1f}s)\n\n"
        f"{completed.stdout}"
    )
    if completed.returncode != 0:
        raise CommandFailed(
            f"{_shown(argv)} exited {completed.returncode}; see {log}\n{_tail(completed.stdout)}"
        )
    return completed.stdout


@dataclass(frozen=True)
class Virtualenv:
    path: Path

    @classmethod
    def create(cls, path: Path, log: Path, python: str = sys.executable) -> Virtualenv:
        """A plain `python -m venv` of the interpreter running the suite."""
        run(
            [python, "-m", "venv", str(path)],
            cwd=path.parent,
            env=clean_env(),
            log=log,
            timeout=120,
        )
        return cls(path)

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def env(self) -> dict[str, str]:
        env = clean_env()
        env["PATH"] = f"{self.bin}{os.pathsep}{env['PATH']}"
        env["VIRTUAL_ENV"] = str(self.path)
        return env

    def command(self, argv: list[str]) -> list[str]:
        """`python manage.py ...`, `pip install ...`, `celery -A ...` as this venv runs them."""
        program = self.bin / argv[0]
        return [str(program), *argv[1:]] if program.exists() else list(argv)


def clean_env() -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    # pip's own configuration (this machine's indexes and certificates).
    env.update({name: value for name, value in os.environ.items() if name.startswith("PIP_")})
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class ForeignProject:
    """`django-admin startproject <name>` in `parent`: manage.py in `root`."""

    root: Path
    name: str
    venv: Virtualenv
    logs: Path

    @classmethod
    def start(cls, parent: Path, name: str, venv: Virtualenv, logs: Path) -> ForeignProject:
        parent.mkdir(parents=True, exist_ok=True)
        run(
            [str(venv.bin / "django-admin"), "startproject", name],
            cwd=parent,
            env=venv.env(),
            log=logs / "startproject.log",
            timeout=60,
        )
        return cls(root=parent / name, name=name, venv=venv, logs=logs)

    @property
    def settings_py(self) -> Path:
        return self.root / self.name / "settings.py"

    @property
    def celery_py(self) -> Path:
        return self.root / self.name / "celery.py"

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def append(self, path: Path, line: str) -> None:
        with path.open("a") as file:
            file.write(f"\n{line}\n")

    def replace_once(self, path: Path, old: str, new: str) -> None:
        text = path.read_text()
        assert text.count(old) == 1, f"{path} holds {old!r} {text.count(old)} times:\n{text}"
        path.write_text(text.replace(old, new))

    def run(self, argv: list[str], log: str, timeout: float = 120) -> str:
        return run(
            self.venv.command(argv),
            cwd=self.root,
            env=self.venv.env(),
            log=self.logs / f"{log}.log",
            timeout=timeout,
        )

    def manage(self, *args: str, log: str, timeout: float = 120) -> str:
        return self.run(["python", "manage.py", *args], log=log, timeout=timeout)

    def shell(self, code: str, log: str, timeout: float = 120) -> dict[str, object]:
        """Run `code` in `manage.py shell -c`; it reports by calling `report(dict)`."""
        program = (
            "import json as _json\n"
            f"def report(outcome):\n    print({_OUTCOME_MARK!r} + _json.dumps(outcome))\n"
            + textwrap.dedent(code)
        )
        output = self.manage("shell", "-c", program, log=log, timeout=timeout)
        for line in reversed(output.splitlines()):
            if line.startswith(_OUTCOME_MARK):
                outcome: dict[str, object] = json.loads(line[len(_OUTCOME_MARK) :])
                return outcome
        raise CommandFailed(f"the shell script reported nothing; see {self.logs / log}.log")


@dataclass
class ForeignWorker:
    """A `celery worker` of the foreign project, in a session of its own: stopping it
    kills its whole process group (pool children, the layer's recorder)."""

    argv: list[str]
    project: ForeignProject
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, timeout: float = 60.0) -> ForeignWorker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            log.write(f"$ {shlex.join(self.argv)}\n\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.project.root,
                env=self.project.venv.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CommandFailed(f"the worker exited early; see {self.log_path}")
            if _READY.search(self.log_text()):
                return self
            time.sleep(0.2)
        raise CommandFailed(f"the worker was not ready after {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        stop_process_group(self.process, timeout)
        self.process = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
