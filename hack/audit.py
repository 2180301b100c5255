"""`make audit` (part of `make check`): known vulnerabilities in requirements.lock, the pinned
runtime dependencies the image installs.

pip-audit runs when its service answers: PyPI's per-release JSON API, whose `vulnerabilities`
come from the PyPA advisory database and GitHub's advisories. Some networks (this project's
builders among them) serve only PyPI's per-project JSON: its `vulnerabilities` are those of
the newest release, so a pin that is the newest release is audited from there, the same data
pip-audit would read. A pin older than the newest release cannot be audited that way: it is
named, and fails the audit only with AUDIT_REQUIRED=1 (set it where the network allows). A
vulnerable pin always fails, with the advisory ids and the fixed versions.
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
PYPI = "https://pypi.org/pypi"


@dataclass(frozen=True)
class Verdict:
    name: str
    version: str
    vulnerabilities: tuple[str, ...] = ()  # "ID (aliases; fixed in ...)"
    unaudited: str = ""  # why this pin could not be audited


def pins(text: str) -> list[tuple[str, str]]:
    """(name, version) of each `name==version` line."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = (part.strip() for part in line.split("==", 1))
            found.append((name, version.split(";", 1)[0].strip()))
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


def main() -> int:
    locked = pins(LOCK.read_text())
    try:
        first = _get(f"{PYPI}/{locked[0][0]}/{locked[0][1]}/json")
    except (urllib.error.URLError, OSError) as exc:
        first, unreachable = None, str(getattr(exc, "reason", exc))
    else:
        unreachable = ""
    if first is not None:  # pip-audit's own service answers: let pip-audit do it all
        print(f"audit: pip-audit of {LOCK.name} ({len(locked)} pins)", flush=True)
        return subprocess.call([
            Path(sys.executable).with_name("pip-audit"), "--requirement", str(LOCK),
            "--no-deps", "--disable-pip", "--strict", "--progress-spinner", "off",
        ])  # fmt: skip
    if unreachable:
        print(f"audit: NOT RUN: PyPI unreachable ({unreachable})", file=sys.stderr)
        return 3 if os.environ.get("AUDIT_REQUIRED") == "1" else 0
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda pin: audit_pin(*pin), locked))
    vulnerable = [v for v in verdicts if v.vulnerabilities]
    unaudited = [v for v in verdicts if v.unaudited]
    for v in vulnerable:
        print(f"VULNERABLE {v.name}=={v.version}: {'; '.join(v.vulnerabilities)}", file=sys.stderr)
    for v in unaudited:
        print(f"not audited {v.name}=={v.version}: {v.unaudited}", file=sys.stderr)
    print(
        f"audit: {len(locked)} pins in {LOCK.name}, {len(locked) - len(unaudited)} audited "
        f"against PyPI's advisory data (per-project JSON), {len(vulnerable)} vulnerable, "
        f"{len(unaudited)} not audited"
    )
    if vulnerable:
        return 1
    return 3 if unaudited and os.environ.get("AUDIT_REQUIRED") == "1" else 0


if __name__ == "__main__":
    sys.exit(main())
