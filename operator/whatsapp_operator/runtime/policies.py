"""kopf registration of the WhatsAppTenantPolicies (model/tenant_policy.py). No decisions here.

- an index of the policies (name -> the parsed policy), complete before any tenant's pass runs
  (kopf holds the handlers until its indexes are filled); the tenants' passes and the signups
  judge their tenant ids against it (`Runtime.policy_verdict`);
- a policy's watch event wakes the tenants it may affect: those of the namespaces it selects,
  before or after the change, and the tenants claiming one of their ids (whose owner may
  change with them); a namespace whose labels change does the same for its own tenants.

Nothing is woken with `--tenant-policy off`. Import this module (run.py does) to enable them.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from whatsapp_operator.model.spec import GROUP, VERSION
from whatsapp_operator.model.tenant_policy import POLICY_PLURAL, TenantPolicy, parse_policy
from whatsapp_operator.runtime.services import Runtime

log = logging.getLogger(__name__)
POLICIES = (GROUP, VERSION, POLICY_PLURAL)
NAMESPACES = ("", "v1", "namespaces")


@kopf.index(*POLICIES)
async def tenant_policies(
    name: str | None, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[str, TenantPolicy]:
    """Policy name -> the policy (one the API server should have refused allows nothing)."""
    if not name or meta.get("deletionTimestamp"):
        return {}
    policy = parse_policy(name, spec)
    if policy is None:
        log.warning("WhatsAppTenantPolicy %s: not understood; it allows nothing", name)
        return {}
    return {name: policy}


def _seen(memo: Any, key: str) -> dict[str, Any]:
    found: dict[str, Any] | None = memo.get(key)
    if found is None:
        found = {}
        memo[key] = found
    return found


@kopf.on.event(*POLICIES)
async def policy_changed(
    type: str, name: str | None, spec: kopf.Spec, meta: kopf.Meta, memo: Any, **_: Any
) -> None:
    if not name:
        return
    seen = _seen(memo, "tenant_policies_seen")
    gone = type == "DELETED" or bool(meta.get("deletionTimestamp"))
    new = None if gone else parse_policy(name, spec)
    old = seen.pop(name, None)
    if new is not None:
        seen[name] = new
    rt: Runtime | None = memo.get("runtime")
    if rt is None or type is None or old == new or rt.tenant_policy == "off":
        return  # a listing (start-up): every tenant's first pass reads the index anyway
    changed = [p for p in (old, new) if p is not None]
    woken = rt.registry.wake_with_rivals(
        lambda key: any(p.selects(rt.labels_of(key[0])) for p in changed), "policy"
    )
    log.info("WhatsAppTenantPolicy %s changed: woke %d tenants", name, woken)


@kopf.on.event(*NAMESPACES)
async def namespace_relabelled(
    type: str, name: str | None, labels: kopf.Labels, memo: Any, **_: Any
) -> None:
    """A namespace's labels changed: which policies select it may have too."""
    if not name:
        return
    seen = _seen(memo, "namespace_labels_seen")
    before = seen.pop(name, None)
    now = None if type == "DELETED" else dict(labels)
    if now is not None:
        seen[name] = now
    rt: Runtime | None = memo.get("runtime")
    if rt is None or type is None or before is None or before == now:
        return
    if rt.tenant_policy == "off":
        return
    rt.registry.wake_with_rivals(lambda key: key[0] == name, "namespace")
