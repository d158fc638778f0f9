"""The bench's child processes, and what they cost in CPU (read from /proc).

Every child starts in a session of its own (`start_new_session=True`), so it and
everything it forks (a prefork worker's pool children) form one process group that a
single `killpg` ends, and a Ctrl-C in the terminal reaches only `bench.run`, which then
stops them in order. `stop_all` is the safety net for an exception or an interrupt:
nothing the bench started outlives it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import queue
import signal
import subprocess
import sys
import threading
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
VAR_BENCH = ROOT / "var" / "bench"  # logs
RESULTS = ROOT / "bench" / "results"  # raw per-round figures
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

_running: list[subprocess.Popen[Any]] = []


def start(
    args: list[str],
    env: dict[str, str],
    log: Path,
    stdout: int | IO[Any] | None = None,
) -> subprocess.Popen[str]:
    """Start `python <args>` in the project root, stderr (and stdout unless given) to log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as log_file:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file if stdout is None else stdout,
            stderr=log_file,
            text=True,
            start_new_session=True,
        )
    _running.append(process)
    return process


def run(args: list[str], env: dict[str, str], log: Path, timeout: float) -> str:
    """Run a short command to completion; its stdout, or an error naming the log."""
    process = start(args, env, log, stdout=subprocess.PIPE)
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"`python {' '.join(args)}` failed ({process.returncode}); see {log}")
    return out


def stop(process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """SIGTERM the whole group (a worker's warm shutdown), then SIGKILL whatever is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    # Pool children may outlive their parent's exit by a moment, or for good if it was
    # killed: the group goes anyway. (The group id stays reserved while any member lives.)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if process.stdout is not None:
        process.stdout.close()
    with contextlib.suppress(ValueError):
        _running.remove(process)


def stop_all() -> None:
    """Stop every child still running, newest first (workers before their watchers)."""
    for process in reversed(list(_running)):
        stop(process, timeout=5.0)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may itself hold spaces or ')')."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one live process (0 when it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # Fields 14 and 15 of proc(5) (utime, stime); fields[0] here is field 3 (state).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def group_cpu_seconds(leader: int) -> tuple[float, float]:
    """(leader's CPU s, sum over the other live members of its process group).

    For a prefork worker that is (main process, pool children): where the time goes
    is the first question about a Celery worker, whose main process is its bottleneck.
    """
    main = cpu_seconds(leader)
    others = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == leader:
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[2]) == leader:
            others += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return main, others


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot, all cores, from /proc/stat.

    The database server is not our child, so its share shows only in the machine total.
    """
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    busy = sum(values[:8]) - values[3] - values[4]
    return busy / CLOCK_TICKS


def line_reader(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The child's stdout lines on a queue (None at EOF), so the caller can wait with a
    timeout. select() on the pipe would not do: the text wrapper reads ahead, so lines
    can sit in its buffer while the pipe itself looks empty.
    """
    lines: queue.Queue[str | None] = queue.Queue()
    stream = process.stdout
    if stream is None:
        raise ValueError("the process was started without stdout=PIPE")

    def pump() -> None:
        # stop() closes the pipe once the child is gone, possibly under this thread.
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, name=f"stdout-{process.pid}", daemon=True).start()
    return lines


def group_rss_bytes(leader: int, main_only: bool = False) -> int:
    """Resident memory of a process group (a worker, its pool and its recorder)."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or int(fields[2]) != leader:  # field 5 of proc(5): the group
            continue
        if main_only and int(entry.name) != leader:
            continue
        with contextlib.suppress(OSError):
            total += int((entry / "statm").read_text().split()[1]) * page
    return total


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled like Ctrl-C: unwind, stopping every child on the way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def terminate(signum: int, _frame: object) -> NoReturn:
    raise Stopped(signum)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C (`Stopped`), so every child is stopped."""
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal that stopped the bench, after saying that its children are gone."""
    print("\ninterrupted: every process the bench started has been stopped", file=sys.stderr)
    return 128 + (interrupt.signum if isinstance(interrupt, Stopped) else signal.SIGINT)


def machine(redis_version: str) -> dict[str, Any]:
    """The host and the versions measured, for the results file."""
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(int(meminfo[1]) / 1024**2, 1),
        "python": platform.python_version(),
        "redis_server": redis_version,
        **{
            name: version(name)
            for name in ("celery", "kombu", "redis", "django", "django-celery-results")
        },
    }
