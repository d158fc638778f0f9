"""Session fixtures: one wheel built from the working tree, one virtualenv it is installed in."""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.acceptance import adoption_steps
from tests.acceptance.adoption_steps import AdoptionSteps
from tests.acceptance.foreign_project import Virtualenv, clean_env, run
from tests.support.worker import PROJECT_ROOT

# Never copied into the build: this checkout's environments, caches and outputs (a
# stale build/ or *.egg-info would otherwise leak files that no longer exist into it).
_NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "var",
    "test-output",
    "staticfiles",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "node_modules",
)


@pytest.fixture(scope="session")
def acceptance_logs(output_dir: Path) -> Path:
    logs = output_dir / "logs" / "acceptance"
    logs.mkdir(parents=True, exist_ok=True)
    return logs


@pytest.fixture(scope="session")
def adoption() -> AdoptionSteps:
    return adoption_steps.read()


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory, acceptance_logs: Path) -> Path:
    """`python -m build --wheel` of a copy of the working tree (built once per session)."""
    work = tmp_path_factory.mktemp("distribution")
    source = work / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=_NOT_SOURCES)
    dist = work / "dist"
    run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)],
        cwd=work,
        env=clean_env(),
        log=acceptance_logs / "build-wheel.log",
        timeout=300,
    )
    (built,) = dist.glob("*.whl")
    return built


def wheel_metadata(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode())
    return {"Name": message["Name"], "Version": message["Version"]}


@pytest.fixture(scope="session")
def adopter_venv(
    tmp_path_factory: pytest.TempPathFactory,
    wheel: Path,
    adoption: AdoptionSteps,
    acceptance_logs: Path,
) -> Virtualenv:
    """A fresh virtualenv after the README's step 1, with the wheel in place of PyPI's copy.

    Its dependencies resolve from the wheel's ranges, constrained to the versions this
    suite runs on (Django 5.2 here, 6.0 under `make test-django6`), so a new release on
    PyPI cannot change what this test means.
    """
    assert adoption.install[:2] == ["pip", "install"], adoption.install
    assert adoption.distribution == wheel_metadata(wheel)["Name"], (
        f"README step 1 installs {adoption.distribution!r}, the wheel is "
        f"{wheel_metadata(wheel)['Name']!r}"
    )
    work = tmp_path_factory.mktemp("adopter")
    venv = Virtualenv.create(work / "venv", log=acceptance_logs / "venv.log")
    constraints = work / "constraints.txt"
    constraints.write_text(_this_environment_as_constraints())
    run(
        venv.command([*adoption.install[:-1], "-c", str(constraints), str(wheel)]),
        cwd=work,
        env=venv.env(),
        log=acceptance_logs / "pip-install.log",
        timeout=400,
    )
    run(
        venv.command(["pip", "check"]),
        cwd=work,
        env=venv.env(),
        log=acceptance_logs / "pip-check.log",
        timeout=60,
    )
    return venv


def _this_environment_as_constraints() -> str:
    pins = {
        dist.metadata["Name"].lower(): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"]
    }
    pins.pop("django-task-layer", None)
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
