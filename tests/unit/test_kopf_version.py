"""kopf fenced to the minor release the runtime's patches of its private modules were written
for (whatsapp_operator/runtime/kopf_compat.py): the installed kopf, the pin in pyproject.toml
and requirements.lock all name KOPF_MINOR."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from whatsapp_operator.runtime.kopf_compat import KOPF_MINOR, installed_minor

ROOT = Path(__file__).resolve().parents[2]
MAJOR, MINOR = KOPF_MINOR


def test_the_installed_kopf_is_the_minor_the_patches_were_written_for() -> None:
    assert installed_minor() == KOPF_MINOR, (
        f"kopf {'.'.join(map(str, installed_minor()))} is installed, but runtime/listing.py, "
        f"toggles.py and run.py patch kopf {MAJOR}.{MINOR}'s private modules: check them "
        "against the new release, then move KOPF_MINOR (runtime/kopf_compat.py) and the pin"
    )


def test_pyproject_pins_kopf_to_that_minor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    kopf = [d for d in project["dependencies"] if re.match(r"kopf\b", d)]
    assert len(kopf) == 1, kopf
    specifiers = {s.strip() for s in kopf[0].removeprefix("kopf").split(",")}
    assert specifiers == {f">={MAJOR}.{MINOR}", f"<{MAJOR}.{MINOR + 1}"}


def test_the_lock_holds_a_release_of_that_minor() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    pins = re.findall(r"^kopf==(\d+)\.(\d+)\.[^\s\\]+", lock, flags=re.MULTILINE)
    assert [(int(a), int(b)) for a, b in pins] == [KOPF_MINOR]
