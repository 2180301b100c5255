"""requirements.lock, the hashed pins of the runtime dependencies the image installs: read it,
and derive the hash-free constraints file that `make venv` installs the tests' venv with.

pip refuses `--hash` options in a constraints file, and `--require-hashes` would also demand
hashes for the dev tools, which the lock does not pin; so the venv gets the lock's exact
versions as constraints, and the image (Dockerfile) installs the lock itself with
`--require-hashes`.

    python hack/lockfile.py constraints [requirements.lock]   # the constraints, on stdout

`problems` is what tests/unit/test_lockfile.py holds the tree to: every pin hashed, every
runtime dependency of pyproject.toml locked at a version it allows, the Dockerfile's base
pinned by digest and of the lock's Python, the lock installed with `--require-hashes`, the
project with `--no-deps`.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(;[^\\]*)?$")
_HASH = re.compile(r"^--hash=(sha256:[0-9a-f]{64})$")
_FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE)
_DIGEST = re.compile(r"^python:(\d+\.\d+)[-\w.]*@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str = ""
    hashes: tuple[str, ...] = ()


def normalize(name: str) -> str:
    """The PEP 503 form of a project name: `PyYAML`, `typing_extensions` -> `pyyaml`, ..."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _logical_lines(text: str) -> list[str]:
    """The requirement lines, with backslash continuations joined and comments dropped."""
    joined, current = [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        line = line.strip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            joined.append(current.strip())
        current = ""
    if current.strip():
        joined.append(current.strip())
    return joined


def parse(text: str) -> dict[str, Pin]:
    """The pins of a lock (`name==version [; marker] --hash=sha256:...`), by normalized name.
    Anything else is refused: a lock holds exact pins only."""
    found: dict[str, Pin] = {}
    for line in _logical_lines(text):
        requirement, *options = line.split(" --")
        match = _PIN.match(requirement.strip())
        if match is None:
            raise ValueError(f"not an exact pin: {line!r}")
        hashes = []
        for option in options:
            hashed = _HASH.match("--" + option.strip())
            if hashed is None:
                raise ValueError(f"unexpected option in {line!r}: --{option.strip()}")
            hashes.append(hashed.group(1))
        name, _extras, version, marker = match.groups()
        found[normalize(name)] = Pin(name, version, (marker or "").lstrip("; "), tuple(hashes))
    return found


def constraints(text: str) -> str:
    """The same pins without their hashes, for `pip install -c` (which refuses hashes)."""
    lines = []
    for pin in parse(text).values():
        lines.append(f"{pin.name}=={pin.version}" + (f" ; {pin.marker}" if pin.marker else ""))
    return "\n".join(lines) + "\n"


def lock_problems(lock: str) -> list[str]:
    try:
        pins = parse(lock)
    except ValueError as exc:
        return [f"requirements.lock: {exc}"]
    if not pins:
        return ["requirements.lock: no pins"]
    return [f"requirements.lock: {p.name}=={p.version} has no hash" for p in pins.values()
            if not p.hashes]  # fmt: skip


def dependency_problems(lock: str, pyproject: str) -> list[str]:
    """Each runtime dependency of pyproject.toml is locked, at a version its specifier allows
    (the extras' own dependencies are `pip check`ed by tests/integration/test_packaging.py)."""
    from packaging.requirements import Requirement

    pins = parse(lock)
    found = []
    for line in tomllib.loads(pyproject)["project"]["dependencies"]:
        wanted = Requirement(line)
        pin = pins.get(normalize(wanted.name))
        if pin is None:
            found.append(f"pyproject.toml: {wanted.name} is not in requirements.lock")
        elif not wanted.specifier.contains(pin.version, prereleases=True):
            found.append(f"requirements.lock: {pin.name}=={pin.version} is not {wanted}")
    return found


def _instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    return [i.strip() for i in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines() if i.strip()]


def dockerfile_problems(dockerfile: str, lock_python: str) -> list[str]:
    found = []
    instructions = _instructions(dockerfile)
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", "\n".join(instructions), re.MULTILINE))
    stages: set[str] = set()
    for instruction in instructions:
        match = _FROM.match(instruction)
        if match is None:
            continue
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), match.group(1))
        alias = re.search(r"\s+AS\s+(\S+)\s*$", instruction, re.IGNORECASE)
        if alias:
            stages.add(alias.group(1))
        if image in stages:
            continue  # an earlier stage, not a base image
        pinned = _DIGEST.match(image)
        if pinned is None:
            found.append(f"Dockerfile: {image} is not a python image pinned by digest (@sha256:)")
        elif pinned.group(1) != lock_python:
            found.append(f"Dockerfile: Python {pinned.group(1)}, the lock's is {lock_python}")
    if not any(_FROM.match(i) for i in instructions):
        found.append("Dockerfile: no FROM")
    installs = [
        command
        for i in instructions
        if i.upper().startswith("RUN")
        for command in i.split("&&")
        if "pip install" in command
    ]
    lock_installs = [c for c in installs if "requirements.lock" in c]
    if not lock_installs:
        found.append("Dockerfile: requirements.lock is never pip-installed")
    if any("--require-hashes" not in c for c in lock_installs):
        found.append("Dockerfile: requirements.lock installed without --require-hashes")
    if any("--no-deps" not in c for c in installs if "whatsapp_operator" in c):
        found.append("Dockerfile: the project installed without --no-deps")
    return found


def lock_python(makefile: str) -> str:
    match = re.search(r"^LOCK_PYTHON\s*:?=\s*(\S+)", makefile, re.MULTILINE)
    return match.group(1) if match else "?"


def problems(root: Path = ROOT) -> list[str]:
    """All of the above, on the tree's files."""
    lock = (root / "requirements.lock").read_text()
    return [
        *lock_problems(lock),
        *dependency_problems(lock, (root / "pyproject.toml").read_text()),
        *dockerfile_problems(
            (root / "Dockerfile").read_text(), lock_python((root / "Makefile").read_text())
        ),
    ]


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[0] != "constraints":
        print("usage: python hack/lockfile.py constraints [requirements.lock]", file=sys.stderr)
        return 2
    lock = Path(argv[1]) if len(argv) == 2 else LOCK
    sys.stdout.write(constraints(lock.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
