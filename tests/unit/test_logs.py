"""Token redaction in log lines (operator/whatsapp_operator/runtime/logs.py)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from whatsapp_operator.runtime.logs import RedactingFilter, Redactor

EAA_TOKEN = "EAAGm0PX4ZCpsBAKZB7ZCZBlogsTOKEN1234567890abcdef"
KNOWN = "sim_token-0123456789.abcdefghij"  # not EAA-shaped: redacted only once known
SHORT_KNOWN = "tok-12345678"  # short, but still a secret the operator has read
MARK = "[REDACTED]"


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor()
    r.add(KNOWN)
    r.add(SHORT_KNOWN)
    return r


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param(f"Bearer {EAA_TOKEN}", EAA_TOKEN, id="EAA token after Bearer"),
        pytest.param(
            f"GET https://graph.facebook.com/v25.0/debug_token?input_token={EAA_TOKEN}&x=1",
            EAA_TOKEN,
            id="EAA token in a query string",
        ),
        pytest.param(f"token={KNOWN}", KNOWN, id="known token"),
        pytest.param(f"'{KNOWN}' rejected", KNOWN, id="known token in quotes"),
        pytest.param(f"secret is {SHORT_KNOWN}", SHORT_KNOWN, id="short known token"),
        pytest.param(f"{EAA_TOKEN}\n{EAA_TOKEN}", EAA_TOKEN, id="twice on two lines"),
    ],
)
def test_scrub_removes_tokens(redactor: Redactor, text: str, secret: str) -> None:
    clean = redactor.scrub(text)
    assert secret not in clean
    assert MARK in clean


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("reconciled shop/acme in 0.21s", id="short ordinary line"),
        pytest.param(
            "tenant shop/acme: Ready True (token valid, phone number verified, quality GREEN)",
            id="ordinary sentence",
        ),
        pytest.param("fingerprint sha256:0123456789abcdef", id="a fingerprint"),
        pytest.param("wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA", id="a wamid"),
        pytest.param("EAAshort is not a token", id="EAA word too short to be a token"),
        pytest.param("internationalization_configuration_parameters", id="long identifier"),
    ],
)
def test_scrub_leaves_ordinary_text_alone(redactor: Redactor, text: str) -> None:
    assert redactor.scrub(text) == text


def test_too_short_secrets_are_not_registered() -> None:
    r = Redactor()
    r.add("abc")
    assert r.scrub("the abc of it, abc again and again") == "the abc of it, abc again and again"


def test_limit_forgets_old_known_tokens_but_not_the_eaa_rule() -> None:
    r = Redactor(limit=2)
    first = "first-known-secret-0001"
    r.add(first)
    r.add("second-known-secret-002")
    r.add("third-known-secret-0003")
    assert r.scrub(f"x {first} y") == f"x {first} y"
    assert r.scrub(f"x third-known-secret-0003 {EAA_TOKEN}") == f"x {MARK} {MARK}"


@pytest.fixture
def captured(redactor: Redactor) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger("test_logs.redaction")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_filter_redacts_formatted_arguments(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("calling with %s and %r", EAA_TOKEN, KNOWN)
    out = stream.getvalue()
    assert EAA_TOKEN not in out
    assert KNOWN not in out
    assert out.startswith("INFO calling with [REDACTED] and '[REDACTED]'")


def test_filter_redacts_exception_text(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise RuntimeError(f"GET https://graph.test/debug_token?input_token={EAA_TOKEN} failed")
    except RuntimeError:
        logger.exception("check failed for %s", "shop/acme")
    out = stream.getvalue()
    assert "check failed for shop/acme" in out
    assert "Traceback" in out
    assert "RuntimeError" in out
    assert EAA_TOKEN not in out
    assert MARK in out


def test_filter_leaves_ordinary_records_alone(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.warning("tenant %s/%s: %d%% of budget", "shop", "acme", 80)
    assert stream.getvalue() == "WARNING tenant shop/acme: 80% of budget\n"
