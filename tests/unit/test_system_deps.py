"""A fresh machine: `make demo` and `make test` stop with ONE line that says which command to
run when PostgreSQL or RabbitMQ (Erlang's epmd) is missing, never with a traceback; with
them present the check passes. Both the demo's own check and hack/install-system-deps.sh
(which `make demo`, `make test` and .ci/run run first) are run as a new user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _executable(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


def _demo_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whatsapp_testkit.demo", "check"],
        env={"PYTHONPATH": str(ROOT / "testkit"), **env},
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("lacking", "named"),
    [
        pytest.param({"epmd"}, ["epmd"], id="no epmd on PATH"),
        pytest.param({"postgres"}, ["PG_BIN"], id="no PostgreSQL server"),
        pytest.param({"epmd", "postgres", "rabbitmq"}, ["epmd", "PG_BIN"], id="none"),
    ],
)
def test_the_demo_check_stops_with_one_line(
    tmp_path: Path, lacking: set[str], named: list[str]
) -> None:
    bin_dir, pg_bin, scripts = tmp_path / "bin", tmp_path / "pg", tmp_path / "rabbitmq"
    for name, path in (("epmd", bin_dir / "epmd"), ("postgres", pg_bin / "postgres"),
                       ("rabbitmq", scripts / "rabbitmq-server")):  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        if name not in lacking:
            _executable(path)
    (scripts / "rabbitmq-env").write_text("")
    done = _demo_check(
        {"PATH": str(bin_dir), "PG_BIN": str(pg_bin), "RABBITMQ_SCRIPTS_DIR": str(scripts)}
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "hack/install-system-deps.sh" in lines[0]
    for word in named:
        assert word in lines[0]


def test_the_demo_check_passes_when_everything_is_there(tmp_path: Path) -> None:
    _executable(tmp_path / "bin" / "epmd")
    _executable(tmp_path / "pg" / "postgres")
    _executable(tmp_path / "rabbitmq" / "rabbitmq-server")
    (tmp_path / "rabbitmq" / "rabbitmq-env").write_text("")
    done = _demo_check({
        "PATH": str(tmp_path / "bin"), "PG_BIN": str(tmp_path / "pg"),
        "RABBITMQ_SCRIPTS_DIR": str(tmp_path / "rabbitmq"),
    })  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def _fake_path(tmp_path: Path, *commands: str) -> str:
    """A PATH with only these commands of this machine (no apt-get: nothing is installed)."""
    bin_dir = tmp_path / "path"
    bin_dir.mkdir()
    for command in commands:
        found = shutil.which(command)
        assert found is not None, command
        (bin_dir / command).symlink_to(found)
    return str(bin_dir)


def _install_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(ROOT / "hack" / "install-system-deps.sh")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_install_system_deps_without_apt_says_which_command_to_run(tmp_path: Path) -> None:
    """`make demo` / `make test` on a machine lacking epmd where nothing can be installed."""
    path = _fake_path(tmp_path, "id", "openssl", "make")  # no epmd, no apt-get
    done = _install_script({"PATH": path, "PG_BIN": str(tmp_path)})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "rabbitmq-server" in lines[0]
    assert "sudo hack/install-system-deps.sh" in lines[0]
    assert done.stdout == ""


def test_install_system_deps_is_silent_when_everything_is_there(tmp_path: Path) -> None:
    path = _fake_path(tmp_path, "id", "openssl", "make", "go")
    for name in ("epmd", "rabbitmq-server"):
        _executable(Path(path) / name)
    done = _install_script({"PATH": path, "PG_BIN": str(tmp_path)})
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_make_demo_and_make_test_run_it_first() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "test-integration", "reliability"):
        (line,) = [x for x in makefile.splitlines() if x.startswith(f"{target}:")]
        assert line.split(":", 1)[1].split()[0] == "system-deps", line
    assert "\t@bash hack/install-system-deps.sh\n" in makefile
    assert "bash hack/install-system-deps.sh" in (ROOT / ".ci" / "run").read_text()
    assert os.access(ROOT / "hack" / "install-system-deps.sh", os.R_OK)
