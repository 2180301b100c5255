"""The receiver's unit tests share one small world:

app A (1001) and app B (1002), each with its secret and verify token;
WABA 3001 of app A: numbers 2001 (display +1 555-0100) and 2002 (+1 555-0101);
WABA 3002 of app B: number 2003;
WABA 3003 of app A: number 2004 (no display number known).
"""

from __future__ import annotations

import pytest

from whatsapp_contract.webhook import ReceiverConfig
from whatsapp_testkit.webhook import App, number, receiver_config
from whatsapp_webhook.config import Index, index_config

APP_A = App("1001", "secret-of-app-a", "token-of-app-a", name="app-a")
APP_B = App("1002", "secret-of-app-b", "token-of-app-b", name="app-b")
NUMBERS = [
    number("2001", "3001", "1001", pool="p1", display="+1 555-0100"),
    number("2002", "3001", "1001", pool="p1", display="+1 555-0101"),
    number("2003", "3002", "1002", pool="p2", display="+1 555-0200"),
    number("2004", "3003", "1001", pool="p1"),
]


@pytest.fixture
def config() -> ReceiverConfig:
    return receiver_config([APP_A, APP_B], NUMBERS)


@pytest.fixture
def index(config: ReceiverConfig) -> Index:
    return index_config(config, "hash")
