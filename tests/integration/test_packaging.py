"""The wheel the Dockerfile installs: built from the tree, installed with the pinned
requirements into a clean virtualenv, and both entry points start from it."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_wheel_installs_from_the_lock_and_both_entry_points_start(tmp_path: Path) -> None:
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path, ".")
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("whatsapp_operator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.startswith("whatsapp_operator-")}
    assert packages == {"whatsapp_operator", "whatsapp_worker", "whatsapp_graph"}  # no testkit

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pinned = run(python, "-m", "pip", "install", "-q", "-r", ROOT / "requirements.lock")
    assert pinned.returncode == 0, pinned.stderr
    installed = run(python, "-m", "pip", "install", "-q", "--no-deps", wheel)
    assert installed.returncode == 0, installed.stderr
    check = run(python, "-m", "pip", "check")  # the lock satisfies every declared dependency
    assert check.returncode == 0, check.stdout

    for command in ("whatsapp-operator", "whatsapp-worker", "whatsapp-send"):
        started = run(env_dir / "bin" / command, "--help", cwd=tmp_path)
        assert started.returncode == 0, f"{command}: {started.stderr}"
        assert "usage:" in started.stdout
    imports = run(
        python, "-c", "import whatsapp_worker.celery_app, whatsapp_operator.handlers", cwd=tmp_path
    )
    assert imports.returncode == 0, imports.stderr
