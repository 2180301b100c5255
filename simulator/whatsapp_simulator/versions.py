"""Graph API versions the simulator serves, with their dates, and how a path's version is read.

Meta: "A version will no longer be usable two years after the date that the subsequent
version is released ... once a version is no longer usable, any calls made to it will be
defaulted to the next oldest, usable version."
https://developers.facebook.com/docs/apps/versions (Platform Versioning)
Dates: Graph API changelog, https://developers.facebook.com/docs/graph-api/changelog/versions
(as compiled in shared/meta-cloud-api.md). "Today" is the simulator's clock (`SimState.now`).

A path segment that is not a version Meta has released (`v25`, `25.0`, `v99.0`) is answered
the way users saw it: code 2500 "Unknown path components: /<rest of the path>", HTTP 400
(arsduo/koala#611 for `v2.80`, owlstacks/owlstack-laravel#8 for a missing `v`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from whatsapp_simulator.faults import GraphError

_VERSION = re.compile(r"v(\d+)\.(\d+)")


@dataclass(frozen=True)
class GraphVersion:
    """One Graph API version: released on `released`, usable through `usable_until`."""

    name: str
    released: date
    usable_until: date | None  # None: not announced (the newest version)

    @property
    def major(self) -> int:
        return int(self.name[1:].split(".")[0])

    def usable_on(self, today: date) -> bool:
        return today >= self.released and (self.usable_until is None or today <= self.usable_until)


# Newest first. `released` of each version is its predecessor's end minus two years.
VERSIONS: tuple[GraphVersion, ...] = (
    GraphVersion("v26.0", date(2026, 7, 29), None),
    GraphVersion("v25.0", date(2026, 2, 18), date(2028, 7, 29)),
    GraphVersion("v24.0", date(2025, 10, 8), date(2028, 2, 18)),
    GraphVersion("v23.0", date(2025, 5, 20), date(2027, 10, 8)),
    GraphVersion("v22.0", date(2025, 1, 21), date(2027, 5, 20)),
    GraphVersion("v21.0", date(2024, 9, 24), date(2027, 1, 21)),
    GraphVersion("v20.0", date(2024, 5, 21), date(2026, 9, 24)),
    GraphVersion("v19.0", date(2024, 1, 26), date(2026, 5, 21)),
    GraphVersion("v18.0", date(2023, 9, 12), date(2026, 1, 26)),
)
BY_NAME = {v.name: v for v in VERSIONS}
OLDEST_MAJOR = min(v.major for v in VERSIONS)


@dataclass(frozen=True)
class ServedVersion:
    """What a call asked for and the version Meta answers it with."""

    requested: str
    served: GraphVersion

    @property
    def upgraded(self) -> bool:
        return self.requested != self.served.name


def _historic(major: int, minor: int) -> bool:
    """A version Meta released before the table (v1.0, v2.0-v2.12, v3.0-v3.3, v4.0-v17.0)."""
    if major >= OLDEST_MAJOR:
        return False
    if major >= 4:
        return minor == 0
    return (major, minor) == (1, 0) or (major == 2 and minor <= 12) or (major == 3 and minor <= 3)


def today_of(now: float) -> date:
    return datetime.fromtimestamp(now, UTC).date()


def usable(today: date) -> list[GraphVersion]:
    """The versions Meta serves on `today`, newest first."""
    return [v for v in VERSIONS if v.usable_on(today)]


def unknown_path(rest: str) -> GraphError:
    return GraphError(2500, message=f"Unknown path components: {rest}")


def resolve(segment: str, rest: str, today: date) -> ServedVersion:
    """The version a call to `/{segment}{rest}` is served with on `today`.

    Raises Meta's 2500 for a segment that is not a released version. An expired version
    (or one older than the table) is served as the oldest usable version.
    """
    served = _served(segment, today)
    if served is None:
        raise unknown_path(rest)
    return ServedVersion(segment, served)


@functools.lru_cache(maxsize=512)
def _served(segment: str, today: date) -> GraphVersion | None:
    match = _VERSION.fullmatch(segment)
    if match is None:
        return None
    known = BY_NAME.get(segment)
    if known is not None and known.released > today:
        return None  # not released yet on the simulator's "today"
    if known is None and not _historic(int(match.group(1)), int(match.group(2))):
        return None  # never a Graph version (v99.0, v2.80)
    serving = usable(today)
    if not serving:
        return None
    if known is not None and known.usable_on(today):
        return known
    return serving[-1]  # expired: the oldest usable version


def at_least(version: GraphVersion, name: str) -> bool:
    """True when `version` is `name` or newer (for fields that changed with a version)."""
    return version.major >= BY_NAME[name].major
