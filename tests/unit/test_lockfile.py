"""Tested on what ships (hack/lockfile.py): requirements.lock hashes every pin and holds every
runtime dependency, the image installs it with `--require-hashes` on a base pinned by digest,
the tests' venv (`make venv`: the lock as constraints) has exactly the locked versions, and
.ci/run and `make check` in CI fail the audit when a pin could not be checked."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("lockfile", ROOT / "hack" / "lockfile.py")
assert _SPEC is not None
assert _SPEC.loader is not None
lockfile = sys.modules["lockfile"] = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(lockfile)

H1, H2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64
HASHED = (
    f"# header\nhttpx==0.28.1 \\\n    --hash={H1} \\\n    --hash={H2}\nsix==1.17.0 --hash={H1}\n"
)
DIGEST = "@sha256:" + "c" * 64
GOOD_DOCKERFILE = f"""# base
FROM python:3.11-slim-bookworm{DIGEST} AS build
RUN python -m pip wheel --no-deps --wheel-dir /wheels .
FROM python:3.11-slim-bookworm{DIGEST}
RUN python -m venv /opt/venv \\
    && /opt/venv/bin/pip install --require-hashes --only-binary=:all: \\
        --requirement /tmp/requirements.lock \\
    && /opt/venv/bin/pip install --no-index --no-deps /wheels/whatsapp_operator-*.whl \\
    && rm -rf /tmp/requirements.lock
"""


def test_the_tree_ships_what_it_tests() -> None:
    assert lockfile.problems() == []


def test_parse_reads_hashed_pins() -> None:
    pins = lockfile.parse(HASHED)
    assert pins["httpx"] == lockfile.Pin("httpx", "0.28.1", "", (H1, H2))
    assert pins["six"].hashes == (H1,)
    assert lockfile.constraints(HASHED) == "httpx==0.28.1\nsix==1.17.0\n"  # pip -c: no hashes


@pytest.mark.parametrize(
    ("lock", "problem"),
    [
        pytest.param(HASHED, None, id="every pin hashed"),
        pytest.param(HASHED + "idna==3.20\n", "idna==3.20 has no hash", id="a pin lacks a hash"),
        pytest.param("httpx>=0.27\n", "not an exact pin", id="a range, not a pin"),
        pytest.param("# nothing\n", "no pins", id="empty"),
        pytest.param(f"six==1 --hash=md5:{'a' * 32}\n", "unexpected option", id="not sha256"),
    ],
)
def test_lock_problems(lock: str, problem: str | None) -> None:
    found = lockfile.lock_problems(lock)
    assert (problem in " ".join(found)) if problem else found == []


@pytest.mark.parametrize(
    ("dependency", "problem"),
    [
        pytest.param("httpx>=0.27", None, id="locked, allowed"),
        pytest.param("HTTPX[http2]>=0.27", None, id="name normalized, extras"),
        pytest.param("kopf>=1.45", "kopf is not in requirements.lock", id="missing from lock"),
        pytest.param("httpx>=0.29", "httpx==0.28.1 is not httpx>=0.29", id="lock out of range"),
    ],
)
def test_dependency_problems(dependency: str, problem: str | None) -> None:
    pyproject = f'[project]\nname = "x"\ndependencies = ["six", "{dependency}"]\n'
    found = lockfile.dependency_problems(HASHED, pyproject)
    assert (problem in " ".join(found)) if problem else found == []


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        pytest.param(("", ""), None, id="as shipped"),
        pytest.param(
            (DIGEST + " AS build", " AS build"),
            "not a python image pinned by digest",
            id="tag only",
        ),
        pytest.param(("--require-hashes ", ""), "without --require-hashes", id="no hashes"),
        pytest.param(("--no-deps /wheels", "/wheels"), "without --no-deps", id="project deps"),
        pytest.param(
            ("python:3.11-slim-bookworm@", "python:3.12-slim@"),
            "Python 3.12",
            id="base Python differs from the lock's",
        ),
        pytest.param(
            ("--requirement /tmp/requirements.lock", "foo"),
            "never pip-installed",
            id="lock not installed",
        ),
    ],
)
def test_dockerfile_problems(edit: tuple[str, str], problem: str | None) -> None:
    dockerfile = GOOD_DOCKERFILE.replace(*edit, 1) if edit[0] else GOOD_DOCKERFILE
    found = lockfile.dockerfile_problems(dockerfile, "3.11")
    assert (problem in " ".join(found)) if problem else found == []


def test_the_venv_has_exactly_the_locked_versions() -> None:
    """`make venv` installs with the lock as constraints: the tests run on the pinned set."""
    wrong = {}
    for key, pin in lockfile.parse((ROOT / "requirements.lock").read_text()).items():
        if pin.marker and not Marker(pin.marker).evaluate():
            continue
        try:
            installed = importlib.metadata.version(pin.name)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != pin.version:
            wrong[key] = f"{installed}, locked {pin.version}"
    assert wrong == {}, "run `make venv`"


def test_make_venv_installs_with_the_lock_as_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "requirements.lock" in recipe.splitlines()[0]  # a new lock reinstalls the venv
    assert "hack/lockfile.py constraints > $(VENV)/constraints.txt" in recipe
    assert re.search(r"pip install -q -c \$\(VENV\)/constraints.txt -e '\.\[dev\]'", recipe)


def test_ci_requires_every_pin_checked_by_the_audit() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^export AUDIT_REQUIRED=1$", ci, re.MULTILINE)
    makefile = (ROOT / "Makefile").read_text()
    assert "AUDIT_REQUIRED ?= $(if $(filter true 1,$(CI)),1,0)" in makefile
    assert "AUDIT_REQUIRED=$(AUDIT_REQUIRED) $(BIN)/python hack/audit.py" in makefile
