"""A Secret volume directory updated exactly the way kubelet does it, for tests and the demo.

`KubeletVolume.write` follows kubelet's AtomicWriter.Write (kubernetes
pkg/volume/util/atomic_writer.go) step by step: the payload goes into a new hidden
`..<UTC timestamp>.<random>` directory, a `..data_tmp` symlink to it is renamed over
`..data` (rename(2): atomic), user-visible `<key> -> ..data/<key>` symlinks are created,
stale ones removed, and the previous timestamped directory is deleted.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DATA = "..data"


class KubeletVolume:
    """A Secret volume directory, updated the way kubelet does it."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.writes = 0

    def write(self, payload: dict[str, bytes]) -> bool:
        data_dir = self.target / DATA
        # (2) the current timestamped directory, from the ..data symlink
        old_ts = os.readlink(data_dir) if data_dir.is_symlink() else ""
        old_ts_path = self.target / old_ts if old_ts else None
        # (3) user-visible paths of the old version that the payload no longer has
        old_paths = set(os.listdir(old_ts_path)) if old_ts_path else set()
        to_remove = old_paths - payload.keys()
        # (4) nothing to do when every file is byte-identical and nothing was removed
        if (
            old_ts_path
            and not to_remove
            and all(
                (old_ts_path / k).exists() and (old_ts_path / k).read_bytes() == v
                for k, v in payload.items()
            )
        ):
            return False
        # (5) a new timestamped directory, mode 0755
        prefix = datetime.now(UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
        ts_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=self.target))
        ts_dir.chmod(0o755)
        # (6) the payload, each file with the Secret volume's default mode 0644
        for key, content in payload.items():
            path = ts_dir / key
            path.write_bytes(content)
            path.chmod(0o644)
        # (8) ..data_tmp -> the new directory (relative), (9) renamed over ..data: atomic
        tmp_link = self.target / "..data_tmp"
        os.symlink(ts_dir.name, tmp_link)
        os.replace(tmp_link, data_dir)
        # (10) user-visible symlinks for new keys: <key> -> ..data/<key>
        for key in payload:
            visible = self.target / key
            if not visible.is_symlink():
                os.symlink(os.path.join(DATA, key), visible)
        # (11) stale user-visible paths, (12) the previous timestamped directory
        for key in to_remove:
            (self.target / key).unlink()
        if old_ts_path:
            shutil.rmtree(old_ts_path)
        self.writes += 1
        return True


def mirror_pool_secrets(
    list_secrets: Callable[[str, str], list[dict[str, Any]]],
    namespace: str,
    pool: str,
    volume: KubeletVolume,
) -> bool:
    """Do kubelet's job where no kubelet runs (envtest, the demo): put the data of the pool's
    published Secrets into `volume`, swapping it atomically when it changed. `list_secrets`
    returns Secret objects (as JSON) by namespace and label selector."""
    payload: dict[str, bytes] = {}
    for item in list_secrets(namespace, f"whatsapp.operator.dev/pool={pool}"):
        for key, raw in (item.get("data") or {}).items():
            payload[key] = base64.b64decode(raw)
    return volume.write(payload) if payload else False


def main(argv: list[str] | None = None) -> int:
    """`python -m whatsapp_testkit.kubelet KUBECTL KUBECONFIG NAMESPACE POOL DIR`: mirror the
    pool's published Secrets into DIR every half second, kubelet's way (the demo's kubelet).
    POOL `secret/NAME` mirrors the one Secret NAME instead (the webhook receiver's config)."""
    import json
    import subprocess
    import sys
    import time

    kubectl, kubeconfig, namespace, pool, directory = (argv or sys.argv[1:])[:5]
    volume = KubeletVolume(Path(directory))
    volume.target.mkdir(parents=True, exist_ok=True)

    def list_secrets(ns: str, selector: str) -> list[dict[str, Any]]:
        name = pool.removeprefix("secret/") if pool.startswith("secret/") else None
        query = ["--ignore-not-found", name] if name else ["-l", selector]
        out = subprocess.run(
            [kubectl, "--kubeconfig", kubeconfig, "get", "secrets", "-n", ns, *query,
             "-o", "json"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        if name:
            return [json.loads(out)] if out.strip() else []
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    while True:
        try:
            if mirror_pool_secrets(list_secrets, namespace, pool, volume):
                print(f"kubelet: {directory} updated ({volume.writes})", flush=True)
        except (subprocess.CalledProcessError, ValueError) as exc:
            print(f"kubelet: {exc}", flush=True)
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
