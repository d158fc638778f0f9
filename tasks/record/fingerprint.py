"""A failure's fingerprint: which failures are "the same problem".

Two failures are the same when the same task raised the same exception class from the
same place in the application's own code. The place is the innermost traceback frame
outside libraries (site-packages, the standard library, Celery's and this layer's own
machinery): a `requests.Timeout` raised deep inside `requests` is grouped by the line of
the task that called it. The file and function count, the line number does not, so a
group survives an edit that moves the code a few lines.

Pure: no Django, no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+, in (?P<function>\S+)', re.MULTILINE)
_LIBRARY_MARKERS = (
    "/site-packages/",
    "/dist-packages/",
    "<frozen ",
    "/lib/python3",
    "/tasks/task.py",
    "/tasks/runtime/",
    "/tasks/record/",
)
_EXCEPTION = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)(?::|$)")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    key: str
    exception: str
    frame: str


def fingerprint(name: str, error: str, traceback: str) -> Fingerprint:
    """The group of a failure of task `name`, from its error ("Class: message") and
    formatted traceback (either may be empty)."""
    exception = exception_class(error, traceback)
    frame = application_frame(traceback)
    digest = hashlib.sha1(f"{name}\0{exception}\0{frame}".encode(), usedforsecurity=False)
    return Fingerprint(digest.hexdigest()[:16], exception, frame)


def exception_class(error: str, traceback: str) -> str:
    """The exception's class name: from the error line, else the traceback's last line."""
    for text in (error.strip(), _last_line(traceback)):
        match = _EXCEPTION.match(text)
        if match:
            return match.group("name").rsplit(".", 1)[-1]
    return "Error"


def application_frame(traceback: str) -> str:
    """`path:function` of the innermost frame in application code ("" when none).

    Falls back to the innermost frame of all when every frame is a library's (a task
    that only calls a library still gets one group per call site of that library).
    """
    frames = [(m.group("path"), m.group("function")) for m in _FRAME.finditer(traceback)]
    if not frames:
        return ""
    own = [frame for frame in frames if not _is_library(frame[0])]
    path, function = (own or frames)[-1]
    return f"{_short_path(path)}:{function}"


def _is_library(path: str) -> bool:
    return any(marker in path for marker in _LIBRARY_MARKERS)


def _short_path(path: str) -> str:
    """The file and its folder (`billing/jobs.py`): the same in every checkout,
    virtualenv and release directory, where the full path is not. The task name, also
    in the fingerprint, keeps two files of that name in different packages apart."""
    return "/".join(path.replace("\\", "/").split("/")[-2:])


def _last_line(traceback: str) -> str:
    lines = [line for line in traceback.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
