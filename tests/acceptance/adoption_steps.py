"""The README's adoption steps, read from README.md, so the test applies what users read.

The section "Add it to your Django + Celery project" holds five numbered lines; each
carries its command or code between backticks. Changing their wording is fine; changing
what they do changes what the acceptance test does.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION_TITLE = "## Add it to your Django + Celery project"

_CODE = re.compile(r"`([^`]+)`")
_STEP = re.compile(r"^(\d+)\. (.+)$")
_REPLACE = re.compile(r"replace `([^`]+)` with `([^`]+)`")


class ReadmeChanged(AssertionError):
    """README.md no longer has the adoption section in the shape this test reads."""


@dataclass(frozen=True)
class AdoptionSteps:
    install: list[str]  # step 1: ["pip", "install", "<distribution name>"]
    settings_line: str  # step 2: appended to settings.py
    celery_import: tuple[str, str]  # step 3: (the line in celery.py, its replacement)
    migrate: list[str]  # step 4: ["python", "manage.py", "migrate"]
    urls_line: str  # step 5: appended to the project's urls.py
    worker: list[str]  # "Run the worker as usual: ..."

    @property
    def distribution(self) -> str:
        return self.install[-1]


def section(text: str) -> str:
    start = text.find(SECTION_TITLE)
    if start < 0:
        raise ReadmeChanged(f"README.md has no section {SECTION_TITLE!r}")
    end = text.find("\n## ", start + len(SECTION_TITLE))
    return text[start : end if end >= 0 else len(text)]


def _code_with(spans: list[str], needle: str, step: str) -> str:
    for span in spans:
        if needle in span:
            return span
    raise ReadmeChanged(f"step {step} of the README has no `...{needle}...`: {spans}")


def read(readme: Path = README) -> AdoptionSteps:
    body = section(readme.read_text())
    steps: dict[str, str] = {}
    for line in body.splitlines():
        match = _STEP.match(line.strip())
        if match:
            steps[match.group(1)] = match.group(2)
    if sorted(steps) != ["1", "2", "3", "4", "5"]:
        raise ReadmeChanged(f"expected five numbered steps, found {sorted(steps)}")

    replace = _REPLACE.search(steps["3"])
    if replace is None:
        raise ReadmeChanged(f"step 3 does not say `replace `...` with `...``: {steps['3']!r}")

    install = shlex.split(_code_with(_CODE.findall(steps["1"]), "pip install", "1"))
    migrate = shlex.split(_code_with(_CODE.findall(steps["4"]), "manage.py migrate", "4"))
    commands = [span for span in _CODE.findall(body) if span.startswith("celery ")]
    worker = shlex.split(_code_with(commands, " worker", "'run the worker'"))
    return AdoptionSteps(
        install=install,
        settings_line=_code_with(_CODE.findall(steps["2"]), "INSTALLED_APPS", "2"),
        celery_import=(replace.group(1), replace.group(2)),
        migrate=migrate,
        urls_line=_code_with(_CODE.findall(steps["5"]), "include(", "5"),
        worker=worker,
    )
