"""The webhook receiver (`whatsapp-webhook`) for tests, benchmarks and the demo: a real
process through its console entry point, its config written the way kubelet writes a mounted
Secret (kubelet.py), free ports, started when /readyz says 200. Plus builders of Meta's
payloads (shapes of the messages webhook reference,
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages)
and a signed-POST client (standard library HTTP: each call one connection).
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whatsapp_contract.webhook import (
    CONFIG_KEY,
    AppEntry,
    NumberEntry,
    ReceiverConfig,
    dump_receiver_config,
)
from whatsapp_testkit.kubelet import KubeletVolume
from whatsapp_testkit.procs import free_ports
from whatsapp_testkit.services import Service, ServiceError
from whatsapp_webhook.signature import SIGNATURE_HEADER, sign

OBJECT = "whatsapp_business_account"


# --- the receiver's config ------------------------------------------------------------------------
@dataclass(frozen=True)
class App:
    app_id: str
    secret: str
    verify_token: str
    name: str = "app"

    def entry(self) -> AppEntry:
        return AppEntry.model_validate(
            {"app_id": self.app_id, "name": self.name, "app_secret": self.secret,
             "verify_token": self.verify_token}, strict=False,
        )  # fmt: skip

    def sign(self, body: bytes) -> str:
        return sign(body, self.secret.encode())


def number(
    phone_number_id: str, waba_id: str, app_id: str, *, pool: str = "default",
    tenant_id: str | None = None, namespace: str = "shop", display: str | None = None,
) -> NumberEntry:  # fmt: skip
    tenant = tenant_id or f"t{phone_number_id}"
    return NumberEntry(
        phone_number_id=phone_number_id, waba_id=waba_id, display_phone_number=display,
        tenant_id=tenant, namespace=namespace, name=tenant, pool=pool, app_id=app_id,
    )  # fmt: skip


def receiver_config(apps: list[App], numbers: list[NumberEntry]) -> ReceiverConfig:
    return ReceiverConfig(
        schema_version=1, apps=tuple(a.entry() for a in apps), numbers=tuple(numbers)
    )


# --- Meta's payloads ------------------------------------------------------------------------------
def envelope(waba_id: str, *changes: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """`{"object": ..., "entry": [{"id": waba, "changes": [{"field", "value"}...]}]}`."""
    return {
        "object": OBJECT,
        "entry": [
            {"id": waba_id, "changes": [{"field": f, "value": v} for f, v in changes]}
        ],
    }  # fmt: skip


def _metadata(phone_number_id: str, display: str) -> dict[str, Any]:
    return {"display_phone_number": display, "phone_number_id": phone_number_id}


def status_value(
    phone_number_id: str, wamid: str, status: str = "delivered", *, recipient: str = "15550001111",
    timestamp: int = 1_750_000_000, callback: str | None = None, display: str = "15550100",
) -> dict[str, Any]:  # fmt: skip
    item: dict[str, Any] = {
        "id": wamid, "status": status, "timestamp": str(timestamp), "recipient_id": recipient,
    }  # fmt: skip
    if callback is not None:
        item["biz_opaque_callback_data"] = callback
    return {
        "messaging_product": "whatsapp",
        "metadata": _metadata(phone_number_id, display),
        "statuses": [item],
    }


def message_value(
    phone_number_id: str, wamid: str, *, sender: str = "15550001111", text: str = "hello",
    timestamp: int = 1_750_000_000, display: str = "15550100",
) -> dict[str, Any]:  # fmt: skip
    return {
        "messaging_product": "whatsapp",
        "metadata": _metadata(phone_number_id, display),
        "contacts": [{"profile": {"name": "Customer"}, "wa_id": sender}],
        "messages": [{"from": sender, "id": wamid, "timestamp": str(timestamp), "type": "text",
                      "text": {"body": text}}],
    }  # fmt: skip


def status_payload(waba_id: str, phone_number_id: str, wamid: str, **kw: Any) -> dict[str, Any]:
    return envelope(waba_id, ("messages", status_value(phone_number_id, wamid, **kw)))


def body_of(payload: Mapping[str, Any] | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


# --- the process ----------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)


class Receiver(Service):
    """`whatsapp-webhook` as a real process; `start()` returns once /readyz answers 200."""

    name = "whatsapp-webhook"

    def __init__(
        self, log_path: Path, *, amqp_url: str, config: ReceiverConfig | bytes | None,
        config_dir: Path, settings: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(log_path)
        self.amqp_url = amqp_url
        self.port, self.metrics_port = free_ports(2)
        self.volume = KubeletVolume(config_dir)
        config_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = config_dir / CONFIG_KEY
        self.settings = dict(settings or {})
        if config is not None:
            self.write_config(config)

    def write_config(self, config: ReceiverConfig | bytes) -> None:
        """Swap the mounted file the way kubelet does (a new `..data`)."""
        data = config if isinstance(config, bytes) else dump_receiver_config(config)
        self.volume.write({CONFIG_KEY: data})

    def argv(self) -> list[str]:
        return [str(self.bin_dir / "whatsapp-webhook"), "--log-level", "INFO"]

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update({
            "WHATSAPP_WEBHOOK_AMQP_URL": self.amqp_url,
            "WHATSAPP_WEBHOOK_CONFIG": str(self.config_path),
            "WHATSAPP_WEBHOOK_LISTEN_HOST": "127.0.0.1",
            "WHATSAPP_WEBHOOK_LISTEN_PORT": str(self.port),
            "WHATSAPP_WEBHOOK_METRICS_PORT": str(self.metrics_port),
            "WHATSAPP_WEBHOOK_RELOAD_INTERVAL": "0.2",
            "WHATSAPP_WEBHOOK_CONNECT_RETRY": "0.5",
        })  # fmt: skip
        env.update({f"WHATSAPP_WEBHOOK_{k.upper()}": v for k, v in self.settings.items()})
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health_url(self) -> str:
        return f"{self.url}/readyz"

    # --- HTTP -------------------------------------------------------------------------------------
    def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: Mapping[str, str] | None = None, timeout: float = 30.0,
    ) -> Answer:  # fmt: skip
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            return Answer(response.status, response.read().decode(errors="replace"),
                          dict(response.getheaders()))  # fmt: skip
        finally:
            conn.close()

    def post(
        self, path: str, payload: Mapping[str, Any] | bytes, *, app: App | None = None,
        signature: str | None = None,
    ) -> Answer:  # fmt: skip
        """POST `payload`, signed by `app` (or with the given header value; neither: unsigned)."""
        body = body_of(payload)
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        elif app is not None:
            headers[SIGNATURE_HEADER] = app.sign(body)
        return self.request("POST", path, body, headers)

    def handshake(self, path: str, token: str, challenge: str = "1158201444") -> Answer:
        query = urllib.parse.urlencode(
            {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": challenge}
        )
        return self.request("GET", f"{path}?{query}")

    def announce_length(self, path: str, length: int, app: App) -> Answer:
        """A POST announcing `length` bytes that sends only a few: the receiver must refuse
        it from the header alone (413), before reading a body that large."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(length))
            conn.putheader(SIGNATURE_HEADER, app.sign(b"{}"))
            conn.endheaders(b"{" * 1024)
            response = conn.getresponse()
            return Answer(response.status, response.read().decode(errors="replace"))
        finally:
            conn.close()

    # --- metrics ----------------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """Samples of the metrics page: 'name{labels}' -> value."""
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            if response.status != 200:
                raise ServiceError(f"{self.name}: metrics unavailable ({response.status})")
            text = response.read().decode()
        finally:
            conn.close()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def metric(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
        total = 0.0
        for key, value in self.metrics().items():
            base, _, rest = key.partition("{")
            if base != name:
                continue
            pairs = dict(p.split("=", 1) for p in rest.rstrip("}").split(",") if "=" in p)
            if all(pairs.get(k) == json.dumps(v) for k, v in labels.items()):
                total += value
        return total
