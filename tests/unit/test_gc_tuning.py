"""The sender's garbage-collector settings (whatsapp_worker.celery_app.tune_gc)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from whatsapp_worker.celery_app import GC_YOUNG_THRESHOLD, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_young_collections_run_far_less_often_and_the_older_generations_keep_theirs() -> None:
    _, older, oldest = gc.get_threshold()
    tune_gc()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, older, oldest)
    assert GC_YOUNG_THRESHOLD >= 10 * 700  # CPython's default, which cost 12 % of the sender


@pytest.mark.usefixtures("restored_gc")
def test_what_exists_at_start_is_out_of_the_collectors_sight() -> None:
    gc.unfreeze()
    before = len(gc.get_objects())
    tune_gc()
    assert gc.get_freeze_count() >= before // 2  # the imports' objects, frozen
    assert len(gc.get_objects()) < before // 2  # and no longer scanned by any collection


@pytest.mark.usefixtures("restored_gc")
def test_cycles_are_still_collected() -> None:
    tune_gc()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # a cycle: reference counting alone does not free it
    gc.collect()
    assert gone() is None
