"""The kopf release the runtime's patches were written for, and kopf's private names it uses.

kopf has no public hook for what the runtime needs, so three modules reach into its private
ones, which any release may change:

- listing.py replaces `kopf._cogs.clients.fetching.fetch_objs` (paged listings that survive
  an etcd compaction);
- toggles.py replaces `kopf._cogs.aiokits.aiotoggles.ToggleSet` (kopf's start-up gate over
  indexes, made linear);
- run.py catches `ActivityError` (below), which `kopf.operator` raises but kopf does not
  export.

pyproject.toml pins kopf to KOPF_MINOR (`kopf>=1.45,<1.46`) and requirements.lock holds a
release of it; tests/unit/test_kopf_version.py fails when the installed kopf, the pin or the
lock name another minor. To move to a new one: re-read the patched code in that release, run
tests/unit/test_listing.py and test_toggles.py, then change KOPF_MINOR and the pin together.
"""

from __future__ import annotations

from importlib.metadata import version

from kopf._core.engines.activities import ActivityError

__all__ = ["KOPF_MINOR", "ActivityError", "installed_minor"]

KOPF_MINOR = (1, 45)  # the (major, minor) of kopf the patches were written for


def installed_minor() -> tuple[int, int]:
    """The (major, minor) of the kopf installed here."""
    major, minor = version("kopf").split(".")[:2]
    return int(major), int(minor)
