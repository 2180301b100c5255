"""Certificates and kubeconfigs for the local control plane, made with the ``openssl`` CLI.

Standard library only: this runs before any virtualenv exists. All keys are ECDSA P-256 (fast to
generate, accepted by kube-apiserver for serving, client and service-account signing keys).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

CONTEXT_NAME = "whatsapp-operator-envtest"

_CA_EXT = "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n"
_SERVER_EXT = (
    "basicConstraints = critical, CA:FALSE\n"
    "keyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
)
_CLIENT_EXT = (
    "basicConstraints = critical, CA:FALSE\n"
    "keyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = clientAuth\n"
)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM private key."""

    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _subject(cn: str, orgs: list[str]) -> str:
    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace("/", "\\/").replace("+", "\\+")

    return "/CN=" + esc(cn) + "".join("/O=" + esc(org) for org in orgs)


def _config(path: Path, extensions: str) -> Path:
    # A self-contained config so the system's openssl.cnf (default v3_ca sections) never leaks in.
    path.write_text(f"[req]\ndistinguished_name = dn\n[dn]\n[ext]\n{extensions}")
    return path


def _issue(out: KeyPair, subject: str, extensions: str, ca: KeyPair | None) -> KeyPair:
    cnf = _config(out.cert.with_suffix(".cnf"), extensions)
    args = ["req", "-x509", "-new", "-nodes", "-newkey", "ec"]
    args += ["-pkeyopt", "ec_paramgen_curve:P-256", "-sha256", "-days", "3650"]
    args += ["-config", str(cnf), "-extensions", "ext", "-subj", subject]
    args += ["-keyout", str(out.key), "-out", str(out.cert)]
    if ca is not None:
        args += ["-CA", str(ca.cert), "-CAkey", str(ca.key)]
    try:
        _openssl(*args)
    finally:
        cnf.unlink(missing_ok=True)
    out.key.chmod(0o600)
    return out


def make_ca(directory: Path, name: str, cn: str) -> KeyPair:
    """A self-signed CA, written as ``<name>.crt`` / ``<name>.key``."""
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    return _issue(pair, _subject(cn, []), _CA_EXT, None)


def make_serving_cert(directory: Path, name: str, ca: KeyPair, hosts: list[str]) -> KeyPair:
    """A server certificate for ``hosts`` (DNS names and IP addresses), signed by ``ca``."""
    ip = re.compile(r"^[0-9.]+$|:")
    san = ", ".join(f"IP:{h}" if ip.search(h) else f"DNS:{h}" for h in hosts)
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    return _issue(pair, _subject(hosts[0], []), f"{_SERVER_EXT}subjectAltName = {san}\n", ca)


def make_client_cert(
    directory: Path, name: str, ca: KeyPair, user: str, groups: list[str]
) -> KeyPair:
    """A client certificate: Kubernetes reads the user from CN and the groups from O."""
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    return _issue(pair, _subject(user, groups), _CLIENT_EXT, ca)


def make_service_account_keys(directory: Path) -> KeyPair:
    """The service-account signing key (``sa.key``) and its public key (``sa.pub``)."""
    pair = KeyPair(directory / "sa.pub", directory / "sa.key")
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(pair.key)
    )
    pair.key.chmod(0o600)
    _openssl("pkey", "-in", str(pair.key), "-pubout", "-out", str(pair.cert))
    return pair


def safe_name(user: str) -> str:
    """A file-name-safe form of a Kubernetes user name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", user) or "_"


def write_kubeconfig(path: Path, server: str, ca_cert: Path, user: str, client: KeyPair) -> Path:
    """A kubeconfig (JSON, which is valid YAML) with the certificates embedded as data."""

    def data(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode("ascii")

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT_NAME,
                "cluster": {"server": server, "certificate-authority-data": data(ca_cert)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": data(client.cert),
                    "client-key-data": data(client.key),
                },
            }
        ],
        "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": user}}],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path
