"""Process, port and HTTP helpers for the local control plane (standard library only)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from whatsapp_testkit import certs


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or stopped."""


def log(message: str) -> None:
    print(f"control-plane: {message}", file=sys.stderr, flush=True)


def free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tls(ca_cert: Path, client: certs.KeyPair) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_cert))
    context.load_cert_chain(str(client.cert), str(client.key))
    return context


def get(url: str, context: ssl.SSLContext | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url`` ignoring proxy settings; returns (status, body) for any HTTP answer."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


def reachable(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    """Like :func:`get`, with connection errors reported as status 0."""
    try:
        status, body = get(url, context, timeout=2.0)
    except (OSError, http.client.HTTPException) as err:
        return 0, str(err)
    return status, body.decode("utf-8", "replace")


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as err:
        return f"(no log: {err})"
    return "\n".join(f"    {line}" for line in text)


def spawn(argv: list[str], log: Path, detach: bool) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )


def stop_process(proc: subprocess.Popen[bytes], name: str, timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} ignored SIGTERM for {timeout:.0f}s; killing it")
            proc.kill()
            proc.wait()


def pid_running(pid: int, binary: str) -> bool:
    """Whether ``pid`` is a live (not zombie) process running ``binary`` (guards pid reuse)."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():  # no procfs (macOS): signal 0 is the best we have
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = (proc / "cmdline").read_bytes().split(b"\0")[:2]
    except (OSError, IndexError):
        return False
    # argv[1] covers Python console scripts, whose argv[0] is the interpreter
    names = {os.path.basename(a.decode(errors="replace")) for a in argv}
    return state != "Z" and binary in names


def stop_pid(pid: int, binary: str, timeout: float = 15.0) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not pid_running(pid, binary):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pid_running(pid, binary):
            time.sleep(0.1)
    if pid_running(pid, binary):
        raise ControlPlaneError(f"{binary} (pid {pid}) survived SIGKILL")
