"""`make audit` (part of `make check`): known vulnerabilities in requirements.lock, the pinned
runtime dependencies the image installs.

pip-audit runs when its service answers: PyPI's per-release JSON API, whose `vulnerabilities`
come from the PyPA advisory database and GitHub's advisories. Some networks (this project's
builders among them) serve only PyPI's per-project JSON: its `vulnerabilities` are those of
the newest release, so a pin that is the newest release is audited from there, the same data
pip-audit would read. No offline advisory database is served through a package registry here
(OSV's and the PyPA database's homes are unreachable; the registries' "offline" packages
download their data at run time), so a pin older than the newest release cannot be checked.

Every pin that was not checked is printed as `NOT CHECKED name==version: why`. With
AUDIT_REQUIRED=1 (CI: .ci/run and `make check` under CI=true) such a pin fails the audit,
unless hack/audit-accepted.txt names that exact pin with the reason it has to stay (e.g. a
dependency pins it exactly); an accepted pin is still printed as NOT CHECKED. The usual
remedy is `make lock` (newest releases). A vulnerable pin always fails, with the advisory
ids and the fixed versions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
ACCEPTED = ROOT / "hack" / "audit-accepted.txt"
PYPI = "https://pypi.org/pypi"


@dataclass(frozen=True)
class Verdict:
    name: str
    version: str
    vulnerabilities: tuple[str, ...] = ()  # "ID (aliases; fixed in ...)"
    unaudited: str = ""  # why this pin could not be audited


def pins(text: str) -> list[tuple[str, str]]:
    """(name, version) of each `name==version` line (hashes and markers dropped)."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("--"):
            name, version = (part.strip() for part in line.split("==", 1))
            found.append((name, version.split(";", 1)[0].split()[0].rstrip("\\")))
    return found


def judge(
    name: str, version: str, release: dict[str, Any] | None, project: dict[str, Any] | None
) -> Verdict:
    """The verdict on one pin from PyPI's per-release JSON, else its per-project JSON (None:
    not served)."""
    if release is not None:
        source = release
    elif project is not None and project.get("info", {}).get("version") == version:
        source = project  # the newest release: the project's vulnerabilities are its own
    elif project is not None:
        newest = project.get("info", {}).get("version")
        return Verdict(name, version, unaudited=f"not the newest release ({newest}), and "
                       "PyPI's per-release data is not served here")  # fmt: skip
    else:
        return Verdict(name, version, unaudited="PyPI serves no JSON for it here")
    found = []
    for vuln in source.get("vulnerabilities") or []:
        if vuln.get("withdrawn"):
            continue
        aliases = ", ".join(vuln.get("aliases") or [])
        fixed = ", ".join(vuln.get("fixed_in") or []) or "no fix yet"
        found.append(f"{vuln.get('id')} ({aliases + '; ' if aliases else ''}fixed in {fixed})")
    return Verdict(name, version, tuple(found))


def _get(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 - fixed https
            return json.load(response)  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def audit_pin(name: str, version: str) -> Verdict:
    """From the per-project JSON: `main` only gets here once the per-release JSON answered 404."""
    return judge(name, version, None, _get(f"{PYPI}/{name}/json"))


def accepted_pins(text: str) -> dict[tuple[str, str], str]:
    """(name, version) -> reason, from `name==version  # reason` lines."""
    found = {}
    for line in text.splitlines():
        pin, _, reason = line.partition("#")
        for name, version in pins(pin):
            found[_key(name), version] = reason.strip()
    return found


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def unchecked_lines(
    unchecked: list[Verdict], accepted: dict[tuple[str, str], str]
) -> tuple[list[str], int]:
    """The NOT CHECKED lines, and how many of those pins are not accepted."""
    lines, refused = [], 0
    for v in unchecked:
        reason = accepted.get((_key(v.name), v.version))
        if reason is None:
            refused += 1
            lines.append(f"NOT CHECKED {v.name}=={v.version}: {v.unaudited}")
        else:
            lines.append(
                f"NOT CHECKED {v.name}=={v.version}: {v.unaudited} (accepted in "
                f"{ACCEPTED.name}: {reason or 'no reason given'})"
            )
    return lines, refused


def verdict_code(vulnerable: int, refused: int, required: bool) -> int:
    """1: a vulnerable pin; 3: pins not checked (and not accepted) while required; else 0."""
    if vulnerable:
        return 1
    return 3 if refused and required else 0


def main(lock: Path = LOCK, accepted_file: Path = ACCEPTED) -> int:
    locked = pins(lock.read_text())
    required = os.environ.get("AUDIT_REQUIRED") == "1"
    try:
        first = _get(f"{PYPI}/{locked[0][0]}/{locked[0][1]}/json")
    except (urllib.error.URLError, OSError) as exc:
        first, unreachable = None, str(getattr(exc, "reason", exc))
    else:
        unreachable = ""
    if first is not None:  # pip-audit's own service answers: let pip-audit do it all
        print(f"audit: pip-audit of {lock.name} ({len(locked)} pins)", flush=True)
        return subprocess.call([
            Path(sys.executable).with_name("pip-audit"), "--requirement", str(lock),
            "--no-deps", "--disable-pip", "--strict", "--progress-spinner", "off",
        ])  # fmt: skip
    if unreachable:
        print(f"audit: NOT CHECKED: all {len(locked)} pins of {lock.name}: PyPI unreachable "
              f"({unreachable})", file=sys.stderr)  # fmt: skip
        return verdict_code(0, len(locked), required)
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda pin: audit_pin(*pin), locked))
    vulnerable = [v for v in verdicts if v.vulnerabilities]
    unaudited = [v for v in verdicts if v.unaudited]
    accepted = accepted_pins(accepted_file.read_text()) if accepted_file.exists() else {}
    lines, refused = unchecked_lines(unaudited, accepted)
    for v in vulnerable:
        print(f"VULNERABLE {v.name}=={v.version}: {'; '.join(v.vulnerabilities)}", file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    print(
        f"audit: {len(locked)} pins in {lock.name}, {len(locked) - len(unaudited)} checked "
        f"against PyPI's advisory data (per-project JSON), {len(vulnerable)} vulnerable, "
        f"{len(unaudited)} NOT CHECKED ({len(unaudited) - refused} of them accepted)"
    )
    code = verdict_code(len(vulnerable), refused, required)
    if code == 3:
        print(f"audit: FAILED: {refused} pins not checked and AUDIT_REQUIRED=1: run `make lock` "
              f"(newest releases), or accept a pin in hack/{ACCEPTED.name} with its reason",
              file=sys.stderr)  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
