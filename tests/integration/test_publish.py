"""The resolved config of each sender pool, published as Secrets for the workers."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from test_operator import apply_tenant, get, wait_reason

from conftest import APP_ID, ISSUED_TOKENS, WORKERS_NAMESPACE, Kubectl, make_world
from whatsapp_contract.resolved import entry_hash, parse_document
from whatsapp_testkit.world import SCOPES, dump, new_token, secret, wait_for
from whatsapp_worker.config import ConfigStore

pytestmark = pytest.mark.integration


def pool_secrets(kubectl: Kubectl, pool: str) -> list[dict[str, Any]]:
    items = kubectl.json(
        "get", "secrets", "-n", WORKERS_NAMESPACE, "-l", f"whatsapp.operator.dev/pool={pool}"
    )["items"]
    return list(items)


def published(kubectl: Kubectl, pool: str) -> dict[str, Any]:
    """tenant id -> (its entry with the token revealed, the Secret it is in)."""
    found: dict[str, Any] = {}
    for item in pool_secrets(kubectl, pool):
        for raw in (item.get("data") or {}).values():
            document = parse_document(base64.b64decode(raw))
            for t in document.tenants:
                found[t.tenant_id] = (t, item)
    return found


def test_ready_tenants_are_published_and_suspend_removes_at_once(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any, tmp_path: Path
) -> None:
    pool = f"p{namespace[2:]}"
    a, b = make_world(sim), make_world(sim)
    apply_tenant(kubectl, namespace, a, "a", tenant_id=f"t_a_{namespace}", senderPool=pool)
    apply_tenant(kubectl, namespace, b, "b", tenant_id=f"t_b_{namespace}", senderPool=pool)
    wait_for(lambda: len(published(kubectl, pool)) == 2, 20, 0.2, "both tenants published")
    entry, item = published(kubectl, pool)[f"t_a_{namespace}"]
    assert entry.token.get_secret_value() == a.token
    assert (entry.waba_id, entry.phone_number_id, entry.throughput_level) == (
        a.waba_id, a.phone_number_id, "STANDARD",
    )  # fmt: skip
    status = wait_for(lambda: get(kubectl, namespace, "a")["status"].get("published"), 10, 0.2)
    assert status["contentHash"] == entry_hash(entry)  # the tenant's own entry, as published
    assert status["secret"] == item["metadata"]["name"]
    assert item["metadata"]["annotations"]["whatsapp.operator.dev/content-hash"].startswith(
        "sha256:"
    )

    # the workers' side reads exactly what was published
    for item in pool_secrets(kubectl, pool):
        for key, raw in (item.get("data") or {}).items():
            (tmp_path / key).write_bytes(base64.b64decode(raw))
    store = ConfigStore(tmp_path, pool=pool)
    store.reload()
    loaded = store.get(f"t_b_{namespace}")
    assert loaded is not None
    assert loaded.token.get_secret_value() == b.token

    # the kill switch
    started = time.monotonic()
    kubectl("patch", "wat", "a", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_for(lambda: f"t_a_{namespace}" not in published(kubectl, pool), 10, 0.1, "suspended")
    print(f"\n[figure] suspend -> removed from the published config in "
          f"{time.monotonic() - started:.2f} s")  # fmt: skip
    assert f"t_b_{namespace}" in published(kubectl, pool)
    assert "published" not in get(kubectl, namespace, "a")["status"]


def test_token_replaced_reaches_the_published_config(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    pool = f"p{namespace[2:]}"
    w = make_world(sim)
    tenant_id = f"t_pub_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id, senderPool=pool)
    wait_for(lambda: tenant_id in published(kubectl, pool), 20, 0.2)
    new = new_token()
    ISSUED_TOKENS.append(new)
    sim.add_token(new, app_id=APP_ID, scopes=SCOPES, targets={s: [w.waba_id] for s in SCOPES[1:]})
    started = time.monotonic()
    kubectl.apply(dump(secret("acme-token", {"accessToken": new})), namespace)
    wait_for(
        lambda: published(kubectl, pool)[tenant_id][0].token.get_secret_value() == new, 10, 0.1
    )
    print(f"\n[figure] token replaced -> published config updated in "
          f"{time.monotonic() - started:.2f} s")  # fmt: skip


def test_nothing_is_rewritten_when_nothing_changed(
    kubectl: Kubectl, namespace: str, operator: Any, sim: Any
) -> None:
    pool = f"p{namespace[2:]}"
    w = make_world(sim)
    tenant_id = f"t_same_{namespace}"
    apply_tenant(kubectl, namespace, w, tenant_id=tenant_id, senderPool=pool)
    wait_for(lambda: tenant_id in published(kubectl, pool), 20, 0.2)
    wait_reason(kubectl, namespace, "acme", "Ready")
    time.sleep(1)
    before = {
        i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in pool_secrets(kubectl, pool)
    }
    kubectl("annotate", "wat", "acme", "-n", namespace, "whatsapp.operator.dev/revalidate=1")
    time.sleep(2)
    operator.restart()  # and a restart adopts what is published instead of rewriting it
    time.sleep(4)
    after = {
        i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in pool_secrets(kubectl, pool)
    }
    assert after == before
    assert tenant_id in published(kubectl, pool)
    assert json.dumps(get(kubectl, namespace, "acme")["status"]["published"])
