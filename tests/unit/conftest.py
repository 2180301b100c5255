"""Fixtures several unit test modules share (tests/conftest.py holds the session's servers):

restore_logging     puts back what `install_redaction` / `setup_logging` change in the
                    process's logging: the record factory, the root logger's handlers and
                    level, and every RedactingFilter added to a handler
clean_operator_env  no WHATSAPP_OPERATOR_* variable from the outer environment reaches the
                    test (ask for it with `pytest.mark.usefixtures`)
spans               the worker's tracing on an SDK provider with an in-memory exporter (the
                    exporter, to read the finished spans), off again after the test
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from whatsapp_contract.redaction import RedactingFilter

OPERATOR_ENV = "WHATSAPP_OPERATOR_"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logging.setLogRecordFactory(factory)
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger in [root, *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            for flt in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
                handler.removeFilter(flt)


@pytest.fixture
def clean_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(OPERATOR_ENV):
            monkeypatch.delenv(name)


@pytest.fixture
def spans() -> Iterator[Any]:
    """An InMemorySpanExporter the worker's tracing (`whatsapp_worker.tracing`) exports to.
    OpenTelemetry is imported here, not by this module: it is the optional [tracing] extra."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from whatsapp_worker import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)
    provider.shutdown()
