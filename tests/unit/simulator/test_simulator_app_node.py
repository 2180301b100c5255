"""`GET /{v}/{app-id}` with an app access token `{app-id}|{app-secret}` (app_node.py): the
app's fields when the secret matches, Meta's 190 when it does not, 101 for an unknown app,
and the phone-number node unchanged for other tokens."""

from __future__ import annotations

import httpx
import pytest

SEED_TOKEN = "EAAdemoTOKEN0000000000000000000000000000000000000000000001"  # the seed's token

APP = "1111111111"  # examples/simulator-seed.yaml: secret demo-app-secret, name Demo App


@pytest.fixture
def http_token() -> str | None:
    return None


@pytest.mark.parametrize(
    ("node", "token", "fields", "status", "expect"),
    [
        (APP, f"{APP}|demo-app-secret", "id,name", 200, {"id": APP, "name": "Demo App"}),
        (APP, f"{APP}|demo-app-secret", "id", 200, {"id": APP}),
        (APP, f"{APP}|demo-app-secret", None, 200, {"id": APP, "name": "Demo App"}),
        (APP, f"{APP}|wrong-secret", "id,name", 400, 190),
        (APP, f"{APP}|demo-app-secret-and-more", "id,name", 400, 190),
        ("2222222222", f"{APP}|demo-app-secret", "id,name", 400, 190),
        ("9999999999", "9999999999|anything", "id,name", 400, 101),
        (APP, f"{APP}|demo-app-secret", "id,secret", 400, 100),
    ],
)
async def test_the_app_node_answers_an_app_access_token(
    http: httpx.AsyncClient,
    node: str,
    token: str,
    fields: str | None,
    status: int,
    expect: dict[str, str] | int,
) -> None:
    params = {"access_token": token, **({"fields": fields} if fields else {})}
    answer = await http.get(f"/{node}", params=params)
    assert answer.status_code == status, answer.text
    body = answer.json()
    if isinstance(expect, int):
        assert body["error"]["code"] == expect
        assert body["error"]["type"] == "OAuthException"
        assert "demo-app-secret" not in answer.text
    else:
        assert body == expect


async def test_a_user_token_on_the_node_still_reads_the_phone_number(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.get("/106540352242922", params={"access_token": SEED_TOKEN, "fields": "id"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": "106540352242922"}
