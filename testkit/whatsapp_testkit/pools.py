"""A sender pool for tests, benchmarks and the demo: tenants in the simulator, their resolved
config in a directory updated the kubelet way, and message builders."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whatsapp_contract.resolved import TenantConfig, build_config_shards, tenant_config
from whatsapp_contract.webhook import decode_callback
from whatsapp_testkit.kubelet import KubeletVolume
from whatsapp_testkit.world import SCOPES, new_id, new_token

MESSAGING = ("whatsapp_business_messaging", "whatsapp_business_management")


def new_pool_name(prefix: str = "p") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class SimTenant:
    config: TenantConfig
    token: str = field(repr=False)  # assertion messages print tenants: never their token

    @property
    def tenant_id(self) -> str:
        return self.config.tenant_id

    @property
    def phone(self) -> str:
        return self.config.phone_number_id


@dataclass
class PoolWorld:
    """One pool's tenants and its mounted config directory."""

    sim: Any  # SimulatorAdmin
    name: str
    directory: Path
    app_id: str
    issued: list[str] = field(default_factory=list)  # every token handed out (leak scans)
    tenants: dict[str, SimTenant] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)  # suspended: left out of the config

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.volume = KubeletVolume(self.directory)

    def add_tenant(
        self,
        *,
        throughput: str = "STANDARD",
        mps: int | None = None,
        pair_limit: bool | dict[str, float] | None = None,
        publish: bool = True,
    ) -> SimTenant:
        waba, phone = new_id("2"), new_id("3")
        self.sim.add_waba(waba)
        self.sim.add_phone(
            phone, waba_id=waba, throughput_level=throughput, mps=mps, pair_limit=pair_limit
        )
        tenant_id = f"t_{phone[-10:]}"
        config = self._mint(tenant_id, waba, phone, throughput)
        tenant = SimTenant(config, config.token.get_secret_value())
        self.tenants[tenant_id] = tenant
        if publish:
            self.publish()
        return tenant

    def _mint(self, tenant_id: str, waba: str, phone: str, throughput: str) -> TenantConfig:
        token = new_token()
        self.issued.append(token)
        self.sim.add_token(
            token,
            app_id=self.app_id,
            scopes=list(SCOPES),
            targets={s: [waba] for s in SCOPES[1:]},
        )
        return tenant_config(
            tenant_id=tenant_id,
            waba_id=waba,
            phone_number_id=phone,
            graph_api_version="v25.0",
            throughput_level="HIGH" if throughput == "HIGH" else "STANDARD",
            token=token,
        )

    def rotate(self, tenant_id: str, *, publish: bool = True) -> str:
        """A new valid token for the tenant (the old one stays valid at Meta)."""
        old = self.tenants[tenant_id].config
        config = self._mint(tenant_id, old.waba_id, old.phone_number_id, old.throughput_level)
        self.tenants[tenant_id] = SimTenant(config, config.token.get_secret_value())
        if publish:
            self.publish()
        return self.tenants[tenant_id].token

    def publish(self, max_bytes: int = 8192) -> bool:
        """Write the pool's shards into the directory, the way kubelet swaps a Secret volume."""
        configs = [t.config for i, t in self.tenants.items() if i not in self.hidden]
        shards = build_config_shards(self.name, configs, max_bytes=max_bytes, min_shards=2)
        return self.volume.write({s.key: s.data for s in shards})

    def message(
        self, tenant: SimTenant, to: str, payload: dict[str, Any] | None = None, *, mid: str
    ) -> dict[str, Any]:
        """The seed's message, with `mid` as messageId and as biz_opaque_callback_data (the
        simulator records the body, so each delivery can be traced back to its message)."""
        waba: dict[str, Any] = dict(payload or {"type": "text", "text": {"body": f"msg {mid}"}})
        waba["to"] = to
        waba["biz_opaque_callback_data"] = mid
        return {
            "metadata": {
                "tenantId": tenant.tenant_id,
                "phoneNumberId": tenant.phone,
                "messageId": mid,
            },
            "wabaPayload": waba,
        }


def recipient(i: int) -> str:
    """A distinct recipient (digits, no '+', as the seed's producers send them): a Spanish
    mobile number, +34 and 9 digits, so that the worker's recipient rule finds it possible
    (the 10 digits after +34 used before are too long for Spain). The worker sends it as
    `sent_to(recipient(i))`."""
    return f"346{i:08d}"


def sent_to(written: str) -> str:
    """What the worker sends as `to` for a recipient written as digits only (E.164 with +)."""
    return "+" + written


def delivered_ids(sim: Any, phones: list[str]) -> list[str]:
    """The message id of every message the simulator accepted for these numbers: the worker
    sends `wo1:<message id>|<producer's value>` as biz_opaque_callback_data (issue 18); a
    message sent without an id keeps the producer's value (`message` puts the id there too)."""
    ids: list[str] = []
    for phone in phones:
        for message in sim.messages(phone):
            mid, producer = decode_callback(message["body"].get("biz_opaque_callback_data"))
            if mid or producer:
                ids.append(mid or producer or "")
    return ids
