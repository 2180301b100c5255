"""What the RabbitMQ harness (rabbitmq.py) stands on (standard library only): where the
scripts and epmd are, whom the node runs as, and just enough AMQP 0-9-1 to prove that a node
takes connections. rabbitmq.py re-exports the public names.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import struct
from pathlib import Path
from typing import Any


class RabbitMQError(RuntimeError):
    """RabbitMQ could not be found, started, queried or stopped."""


def find_scripts_dir() -> Path:
    """The folder holding `rabbitmq-server`, `rabbitmqctl` and `rabbitmq-env`."""
    candidates = [os.environ.get("RABBITMQ_SCRIPTS_DIR", ""), "/usr/lib/rabbitmq/bin"]
    on_path = shutil.which("rabbitmq-server")
    if on_path:  # Debian's /usr/sbin/rabbitmq-server is an `su` wrapper: rabbitmq-env marks it
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in filter(None, candidates):
        if (
            os.access(Path(folder) / "rabbitmq-server", os.X_OK)
            and (Path(folder) / "rabbitmq-env").is_file()
        ):
            return Path(folder)
    raise RabbitMQError(
        "RabbitMQ not found: install rabbitmq-server (Debian) or set RABBITMQ_SCRIPTS_DIR"
    )


def find_epmd() -> Path:
    found = shutil.which("epmd")
    if not found:
        raise RabbitMQError("epmd (Erlang) not found on PATH: install erlang-base")
    return Path(found).resolve()


def run_user() -> pwd.struct_passwd | None:
    """Whom the node runs as when we are root (None: the current user)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(os.environ.get("RABBITMQ_USER", "rabbitmq"))
    except KeyError:
        return None  # no such user: root it is (RabbitMQ does not refuse root)


def as_user() -> dict[str, Any]:
    """Popen arguments that drop root to the run user (nothing when not root)."""
    user = run_user()
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


# -- just enough AMQP 0-9-1 to prove the node takes connections ------------------------------
def _shortstr(value: bytes) -> bytes:
    return bytes([len(value)]) + value


def _longstr(value: bytes) -> bytes:
    return struct.pack("!I", len(value)) + value


def _method(class_id: int, method_id: int, args: bytes) -> bytes:
    payload = struct.pack("!HH", class_id, method_id) + args
    return struct.pack("!BHI", 1, 0, len(payload)) + payload + b"\xce"


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise RabbitMQError("the node closed the connection (starting up? wrong password?)")
        data += chunk
    return data


def _expect(sock: socket.socket, class_id: int, method_id: int) -> bytes:
    """The arguments of the next method frame, which must be (class_id, method_id)."""
    while True:
        kind, _channel, size = struct.unpack("!BHI", _read_exact(sock, 7))
        payload = _read_exact(sock, size + 1)[:-1]
        if kind != 1:  # heartbeat
            continue
        got = struct.unpack("!HH", payload[:4])
        if got == (10, 50):  # connection.close: code, text
            (code,) = struct.unpack("!H", payload[4:6])
            text = payload[7 : 7 + payload[6]].decode(errors="replace")
            raise RabbitMQError(f"the node refused the connection: {code} {text}")
        if got != (class_id, method_id):
            raise RabbitMQError(f"unexpected AMQP method {got}, wanted {(class_id, method_id)}")
        return payload[4:]


def amqp_probe(port: int, user: str, password: str, vhost: str = "/", timeout: float = 5.0) -> str:
    """Open (PLAIN auth, the vhost) and close an AMQP connection; returns the server version."""
    caps = _shortstr(b"authentication_failure_close") + b"t\x01"  # a 403 rather than EOF
    props = _shortstr(b"capabilities") + b"F" + _longstr(caps)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        start = _expect(sock, 10, 10)  # connection.start
        version = "?"
        at = start.find(b"\x07versionS")
        if at >= 0:
            (size,) = struct.unpack("!I", start[at + 9 : at + 13])
            version = start[at + 13 : at + 13 + size].decode(errors="replace")
        response = b"\0" + user.encode() + b"\0" + password.encode()
        args = _longstr(props) + _shortstr(b"PLAIN") + _longstr(response) + _shortstr(b"en_US")
        sock.sendall(_method(10, 11, args))  # start-ok
        channel_max, frame_max, _heartbeat = struct.unpack("!HIH", _expect(sock, 10, 30)[:8])
        sock.sendall(_method(10, 31, struct.pack("!HIH", channel_max, frame_max, 0)))  # tune-ok
        sock.sendall(_method(10, 40, _shortstr(vhost.encode()) + b"\0\0"))  # open
        _expect(sock, 10, 41)  # open-ok
        sock.sendall(_method(10, 50, struct.pack("!H", 200) + b"\0" + struct.pack("!HH", 0, 0)))
        _expect(sock, 10, 51)  # close-ok
    return version


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False
