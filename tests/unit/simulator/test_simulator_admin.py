"""Graph API simulator: the admin API through SimulatorAdmin, the thread runner, the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from whatsapp_simulator import SimulatorAdmin, SimulatorThread, fingerprint
from whatsapp_simulator.cli import main as cli_main

SEED = Path(__file__).parents[3] / "examples" / "simulator-seed.yaml"
APP, SECRET = "1111111111", "demo-app-secret"
WABA = "102290129340398"
PHONE = "106540352242922"
TOKEN = "EAAdemoTOKEN0000000000000000000000000000000000000000000001"
NEW_TOKEN = "EAAadminMadeToken"
SCOPES = ["whatsapp_business_management", "whatsapp_business_messaging"]
BODY = {"messaging_product": "whatsapp", "to": "16505550123", "type": "text", "text": {"body": "x"}}


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorThread]:
    with SimulatorThread() as sim:
        yield sim


@pytest.fixture
def admin(server: SimulatorThread) -> Iterator[SimulatorAdmin]:
    with SimulatorAdmin(server.url) as client:
        client.reset()
        yield client


@pytest.fixture
def graph(server: SimulatorThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/v25.0", timeout=5.0) as client:
        yield client


def world(admin: SimulatorAdmin) -> None:
    admin.add_app(APP, SECRET, name="Demo App")
    admin.add_waba(WABA, name="Demo WABA")
    admin.add_phone(PHONE, waba_id=WABA, display_phone_number="+1 555-0100", verified_name="Demo")
    admin.add_token(NEW_TOKEN, app_id=APP, scopes=SCOPES, targets={SCOPES[1]: [WABA]})


def send(graph: httpx.Client, token: str = NEW_TOKEN, to: str = "16505550123") -> httpx.Response:
    body = {**BODY, "to": to}
    return graph.post(f"/{PHONE}/messages", json=body, headers={"Authorization": f"Bearer {token}"})


def test_healthz_and_reset(admin: SimulatorAdmin, graph: httpx.Client) -> None:
    assert admin.healthz()
    world(admin)
    assert send(graph).status_code == 200
    admin.reset()
    assert admin.messages() == []
    assert admin.calls()["total"] == 0
    assert send(graph).json()["error"]["code"] == 190


def test_tokens_lifecycle(admin: SimulatorAdmin, graph: httpx.Client) -> None:
    world(admin)
    info = admin.token(NEW_TOKEN)
    assert info["fingerprint"] == fingerprint(NEW_TOKEN)
    assert admin.token(fingerprint(NEW_TOKEN))["token"] == NEW_TOKEN
    assert [t["fingerprint"] for t in admin.tokens()] == [fingerprint(NEW_TOKEN)]
    admin.revoke_token(NEW_TOKEN, subcode=458)
    err = send(graph).json()["error"]
    assert (err["code"], err["error_subcode"]) == (190, 458)
    admin.add_token("EAAexp", app_id=APP, scopes=SCOPES, expires_in=3600)
    assert admin.token("EAAexp")["expires_at"] > time.time()
    admin.expire_token("EAAexp")
    assert send(graph, token="EAAexp").json()["error"]["error_subcode"] == 463
    with pytest.raises(httpx.HTTPStatusError) as caught:
        admin.token("missing")
    assert caught.value.response.status_code == 404


def test_advance_clock_expires_tokens(admin: SimulatorAdmin, graph: httpx.Client) -> None:
    world(admin)
    admin.add_token("EAAhour", app_id=APP, scopes=SCOPES, expires_in=3600)
    assert send(graph, token="EAAhour").status_code == 200
    admin.advance_clock(3601)
    assert send(graph, token="EAAhour").json()["error"]["error_subcode"] == 463


def test_phones_patch_and_limits(admin: SimulatorAdmin, graph: httpx.Client) -> None:
    world(admin)
    admin.patch_phone(PHONE, mps=2, pair_limit=False, quality_rating="YELLOW")
    assert [send(graph).status_code for _ in range(3)] == [200, 200, 400]
    assert admin.stats()["throttled"]["130429"] == 1
    assert admin.stats()["throttled"]["by_phone"] == {PHONE: {"130429": 1}}
    fields = graph.get(f"/{PHONE}", params={"fields": "quality_rating", "access_token": NEW_TOKEN})
    # Graph answers a node's id with any field list: `?fields=status` -> {"status", "id"}
    # https://developers.facebook.com/docs/whatsapp/cloud-api/phone-numbers
    assert fields.json() == {"quality_rating": "YELLOW", "id": PHONE}
    with pytest.raises(httpx.HTTPStatusError):
        admin.patch_phone(PHONE, quality_rating="PURPLE")
    with pytest.raises(httpx.HTTPStatusError):
        admin.patch_phone("missing", mps=1)
    phone = admin.add_phone("2", waba_id="new-waba", pair_limit={"burst": 1, "refill_seconds": 60})
    assert (phone["pair_burst"], phone["pair_refill_seconds"]) == (1, 60.0)


def test_messages_are_filtered(admin: SimulatorAdmin, graph: httpx.Client) -> None:
    world(admin)
    for to in ("111", "222", "111"):
        send(graph, to=to)
    assert [m["to"] for m in admin.messages(PHONE)] == ["111", "222", "111"]
    assert [m["index"] for m in admin.messages(to="111")] == [0, 2]
    assert [m["to"] for m in admin.messages(since_index=2)] == ["111"]
    assert admin.messages("other") == []
    first = admin.messages()[0]
    assert first["token_fingerprint"] == fingerprint(NEW_TOKEN)
    assert first["body"]["text"] == {"body": "x"}


def test_calls_summary(admin: SimulatorAdmin, graph: httpx.Client) -> None:
    world(admin)
    send(graph)
    send(graph, token="EAAnobody")
    graph.get("/debug_token", params={"input_token": NEW_TOKEN, "access_token": f"{APP}|{SECRET}"})
    calls = admin.calls()
    fp = fingerprint(NEW_TOKEN)
    assert calls["total"] == 3
    assert calls["by_kind"] == {"messages": 2, "debug_token": 1}
    assert calls["by_outcome"] == {"ok": 2, "190": 1}
    assert calls["by_kind_token"]["debug_token"] == {fp: 1}
    assert calls["by_kind_outcome"]["messages"] == {"ok": 1, "190": 1}
    assert calls["by_token"][fp] == 2


def test_faults_via_admin(admin: SimulatorAdmin, graph: httpx.Client) -> None:
    world(admin)
    first = admin.add_fault("error_code", kind="messages", code=131000, count=5)
    admin.add_fault("http_status", kind="phone", http_status=503, token=NEW_TOKEN)
    assert [f["id"] for f in admin.faults()] == [first, admin.faults()[1]["id"]]
    assert send(graph).json()["error"]["code"] == 131000
    admin.remove_fault(first)
    assert send(graph).status_code == 200
    assert graph.get(f"/{PHONE}", params={"access_token": NEW_TOKEN}).status_code == 503
    admin.clear_faults()
    assert admin.faults() == []
    assert graph.get(f"/{PHONE}", params={"access_token": NEW_TOKEN}).status_code == 200


def test_codes_config_and_latency(admin: SimulatorAdmin, graph: httpx.Client) -> None:
    world(admin)
    created = admin.add_code("CODE", app_id=APP, scopes=SCOPES, ttl=60, token="EAAcoded")
    assert created["code"] == "CODE"
    params = {"client_id": APP, "client_secret": SECRET, "code": "CODE"}
    assert graph.get("/oauth/access_token", params=params).json()["access_token"] == "EAAcoded"
    config = admin.set_config(management_limit_per_hour=1, throttle_http_status=429)
    assert (config["management_limit_per_hour"], config["throttle_http_status"]) == (1, 429)
    auth = {"access_token": NEW_TOKEN}
    assert graph.get(f"/{WABA}/phone_numbers", params=auth).status_code == 200
    limited = graph.get(f"/{WABA}/phone_numbers", params=auth)
    assert (limited.status_code, limited.json()["error"]["code"]) == (429, 80007)
    admin.set_latency(default_ms=5, per_endpoint={"messages": 0})
    started = time.monotonic()
    graph.get("/debug_token", params={"input_token": NEW_TOKEN, "access_token": NEW_TOKEN})
    assert time.monotonic() - started >= 0.005


def test_seed_via_admin_and_bad_input(admin: SimulatorAdmin, graph: httpx.Client) -> None:
    admin.seed(
        {"apps": [{"id": APP, "secret": SECRET}], "phones": [{"id": PHONE, "waba_id": WABA}]}
    )
    admin.add_token(TOKEN, app_id=APP, scopes=SCOPES)
    assert send(graph, token=TOKEN).status_code == 200
    for path, body in [("/_sim/tokens", {"app_id": APP}), ("/_sim/phones", {"id": "x"})]:
        response = httpx.post(f"{graph.base_url.copy_with(path=path)}", json=body)
        assert response.status_code == 400
        assert "required" in response.json()["error"]


def test_thread_call_runs_on_the_loop(server: SimulatorThread, admin: SimulatorAdmin) -> None:
    world(admin)
    assert server.call(lambda state: sorted(state.phones)) == [PHONE]


def test_cli_serves_the_seed_and_never_logs_tokens(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    command = [
        sys.executable,
        "-m",
        "whatsapp_simulator.cli",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--seed",
        str(SEED),
        "--log-level",
        "DEBUG",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        port = int(port_file.read_text())
        assert line == f"whatsapp-graph-sim listening on http://127.0.0.1:{port}"
        base = f"http://127.0.0.1:{port}"
        sent = httpx.post(
            f"{base}/v18.0/{PHONE}/messages", params={"access_token": TOKEN}, json=BODY
        )
        assert sent.status_code == 200
        assert httpx.get(f"{base}/_sim/tokens/{TOKEN}").json()["app_id"] == APP
        with SimulatorAdmin(base) as admin:
            admin.revoke_token(TOKEN)
            assert [m["to"] for m in admin.messages()] == ["16505550123"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert TOKEN not in out + err
    assert fingerprint(TOKEN) in err
    assert "POST /v18.0/106540352242922/messages 200" in err


def test_cli_rejects_a_bad_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(["not", "a", "mapping"]))
    with pytest.raises(ValueError, match="mapping"):
        cli_main(["--port", "0", "--seed", str(seed)])


def test_message_log_keeps_the_newest_with_absolute_indexes(
    admin: SimulatorAdmin, graph: httpx.Client
) -> None:
    world(admin)
    admin.patch_phone(PHONE, pair_limit=False)
    admin.set_config(message_log_limit=10)
    for i in range(12):
        assert send(graph, to=f"1{i:03d}").status_code == 200
    assert [m["index"] for m in admin.messages()] == list(range(2, 12))
    assert [m["to"] for m in admin.messages(since_index=10)] == ["1010", "1011"]
    assert admin.stats()["messages"] == 12
