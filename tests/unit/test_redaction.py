"""Secrets out of every log line, in every process (whatsapp_contract/redaction.py): known
secrets matched anywhere in the text, on every logger (kopf's Event poster too, and
loggers and handlers made later), in the operator and the sender worker (the receiver:
tests/unit/webhook/test_webhook_redaction.py)."""

from __future__ import annotations

import io
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import kopf
import pytest
from kopf._core.actions import loggers as kopf_loggers
from kopf._core.engines import posting

from whatsapp_contract.redaction import MARK, Redactor, url_password
from whatsapp_contract.resolved import build_config_shards, tenant_config
from whatsapp_operator.runtime.logs import install_redaction
from whatsapp_testkit.kubelet import KubeletVolume
from whatsapp_testkit.leaks import scan

SECRET = "sim_token-0123456789abcdefghij"  # not EAA-shaped: redacted only once known
SHORT = "tok-12345678"  # 12 characters: the short tier
PASSWORD = "p@ss w0rd!+secret"  # characters no token has
EAA = "EAAGm0PX4ZCpsBAKZB7ZCZBlogsTOKEN1234567890abcdef"


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor()
    r.add_all([SECRET, SHORT, PASSWORD])
    return r


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param(f"reading file-{SECRET}", SECRET, id="glued after a dash"),
        pytest.param(f"token {SECRET}.", SECRET, id="followed by a dot"),
        pytest.param(f"x{SECRET}y", SECRET, id="glued on both sides"),
        pytest.param(f"{SHORT}.{SHORT}|{SHORT}", SHORT, id="a short secret three times"),
        pytest.param(f"login with {PASSWORD} refused", PASSWORD, id="a password with spaces"),
        pytest.param(json.dumps({"path": f"/tmp/{SECRET}.json", "n": 1}), SECRET, id="inside JSON"),
        pytest.param(
            json.dumps({"body": {"error": f"bad token {SHORT}."}}), SHORT, id="nested JSON"
        ),
        pytest.param(f"token={SECRET[:24]}...", SECRET[:24], id="the first 24 characters"),
        pytest.param(f"Bearer file-{EAA}.", EAA, id="an EAA token glued to a word"),
    ],
)
def test_known_secrets_are_found_anywhere_in_the_text(
    redactor: Redactor, text: str, secret: str
) -> None:
    clean = redactor.scrub(text)
    assert secret not in clean
    assert MARK in clean
    assert scan([SECRET, SHORT, PASSWORD, EAA], {"line": clean}) == []


def test_what_is_not_a_secret_stays() -> None:
    r = Redactor()
    r.add(SECRET)
    assert r.scrub(f"{SECRET[:23]} is not enough") == f"{SECRET[:23]} is not enough"
    differs = "sim_token-0123456789aXcdefghij"  # from its 22nd character
    assert r.scrub(differs) == differs
    assert r.scrub(f"{SECRET[:29]}X") == f"{MARK}X"  # 24 or more: a truncated secret
    assert r.scrub(f"a-{SECRET}-b") == f"a-{MARK}-b"


def test_thousands_of_secrets_are_each_found() -> None:
    r = Redactor()
    known = [secrets.token_urlsafe(40) for _ in range(5000)] + [
        secrets.token_hex(5)
        for _ in range(500)  # 10 characters
    ]
    r.add_all(known)
    for secret in known[::97]:
        line = f"GET /v25.0/me?access_token=x{secret}.&fields=id {secret}"
        assert secret not in r.scrub(line)
    assert r.scrub("an ordinary line about tenant t_0001") == "an ordinary line about tenant t_0001"


def test_overlapping_secrets_become_one_mark() -> None:
    r = Redactor()
    r.add_all(["abcdefghijklmnop", "ijklmnopqrstuvwx"])
    assert r.scrub("<abcdefghijklmnopqrstuvwx>") == f"<{MARK}>"


def test_url_password() -> None:
    assert url_password("amqp://user:s%40cret-pass@rabbit:5672/") == ("s@cret-pass",)
    assert url_password("amqp://rabbit:5672/") == ()


# --- records: message, arguments, exceptions -------------------------------------------


def stream_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


@pytest.mark.usefixtures("restore_logging")
def test_arguments_exception_text_and_exception_args_are_redacted(redactor: Redactor) -> None:
    install_redaction(redactor)
    logger, stream = stream_logger("test_redaction.records")  # made after the install
    logger.info("calling with %s and %r", f"file-{SECRET}", {"token": f"{SHORT}."})
    try:
        raise KeyError(f"{SECRET}.", {"password": PASSWORD})
    except KeyError:
        logger.exception("lookup failed for %s", "shop/acme")
    try:
        raise RuntimeError(json.dumps({"url": f"https://graph.test/?input_token={SHORT}."}))
    except RuntimeError as exc:
        logger.warning("graph: %s", exc, exc_info=True, stack_info=True)
    out = stream.getvalue()
    assert "lookup failed for shop/acme" in out
    for word in ("Traceback", "KeyError", "RuntimeError"):
        assert word in out
    assert "Stack (most recent call last)" in out
    assert scan([SECRET, SHORT, PASSWORD], {"log": out}) == []
    assert out.count(MARK) >= 6


@pytest.mark.usefixtures("restore_logging")
def test_a_record_for_kopfs_event_poster_is_redacted_before_it_is_posted(
    redactor: Redactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kopf posts the records of `kopf.objects` as Kubernetes Events (K8sPoster): the message
    it queues carries no secret, and neither does any other handler on that logger."""
    posted: list[str] = []
    monkeypatch.setattr(posting, "enqueue", lambda **kw: posted.append(kw["message"]))
    kopf.configure(log_format=kopf.LogFormat.PLAIN)
    install_redaction(redactor)
    later = io.StringIO()  # a handler added after the install
    handler = logging.StreamHandler(later)
    logging.getLogger("kopf.objects").addHandler(handler)
    try:
        body: Any = {
            "apiVersion": "whatsapp.operator.dev/v1alpha1",
            "kind": "WhatsAppTenant",
            "metadata": {"name": "acme", "namespace": "shop", "uid": "u1"},
        }
        settings = kopf.OperatorSettings()
        settings.posting.loggers = True  # off in the operator today; the poster is there
        logger = kopf_loggers.ObjectLogger(body=body, settings=settings)
        logger.warning("token check failed: %s", f"GET /me?access_token={SECRET}.")
        try:
            raise ValueError(f"file-{SHORT}")
        except ValueError:
            logger.exception("reading the Secret failed")
    finally:
        logging.getLogger("kopf.objects").removeHandler(handler)
    assert len(posted) == 2
    assert "token check failed" in posted[0]
    assert "ValueError" in posted[1]
    assert scan([SECRET, SHORT], {"events": "\n".join(posted), "later": later.getvalue()}) == []
    assert all(MARK in message for message in posted)


@pytest.mark.usefixtures("restore_logging")
def test_an_explicit_kopf_event_is_redacted_before_it_is_queued(
    redactor: Redactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kopf.event/warn post without a log record: the operator redacts kopf's queue too."""
    posted: list[str] = []
    monkeypatch.setattr(posting, "enqueue", lambda **kw: posted.append(kw["message"]))
    install_redaction(redactor)
    install_redaction(redactor)  # idempotent: one wrapper
    body: Any = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": "b"}}
    token = posting.settings_var.set(kopf.OperatorSettings())  # as in a handler
    try:
        kopf.warn(body, reason="TokenRejected", message=f"Meta said: bad token file-{SECRET}.")
        kopf.event(body, type="Normal", reason="Ready", message="ready")
    finally:
        posting.settings_var.reset(token)
    assert posted == [f"Meta said: bad token file-{MARK}.", "ready"]


# --- the sender worker -----------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_the_workers_logging_redacts_its_tenants_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker's set-up installs the redaction; the tokens come from its resolved config."""
    from whatsapp_worker.cli import setup_logging
    from whatsapp_worker.config import ConfigStore

    token = "wkr_" + secrets.token_urlsafe(40)  # not EAA-shaped: only known tokens are caught
    tenant = tenant_config(
        tenant_id="t_redact",
        waba_id="1001",
        phone_number_id="5001",
        graph_api_version="v25.0",
        token=token,
    )
    volume = KubeletVolume(tmp_path)
    volume.write({s.key: s.data for s in build_config_shards("default", [tenant])})
    setup_logging("INFO")
    store = ConfigStore(tmp_path, pool="default")
    assert store.reload().tenants["t_redact"].token.get_secret_value() == token
    caplog.set_level(logging.INFO)
    logging.getLogger("whatsapp_worker.sender").warning("send failed: file-%s.json", token)
    logging.getLogger("celery.worker").error("task args: %s", json.dumps({"t": token}))
    assert caplog.records
    assert token not in caplog.text
    assert scan([token], {"log": caplog.text}) == []
    assert caplog.text.count(MARK) == 2
