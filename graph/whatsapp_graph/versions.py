"""Graph API versions and when Meta stops serving them: the one table in the code.

Source: Meta's changelog as compiled in shared/meta-cloud-api.md (September 2026). A version
lives about two years after its successor ships; when Meta announces a date, add it here.
"""

from __future__ import annotations

import enum
import re
from datetime import date, timedelta

# version -> last day it is usable (None: not announced yet)
END_OF_LIFE: dict[str, date | None] = {
    "v26.0": None,
    "v25.0": date(2028, 7, 29),
    "v24.0": date(2028, 2, 18),
    "v23.0": date(2027, 10, 8),
    "v22.0": date(2027, 5, 20),
    "v21.0": date(2027, 1, 21),
    "v20.0": date(2026, 9, 24),
    "v19.0": date(2026, 5, 21),
    "v18.0": date(2026, 1, 26),
}
WARN_BEFORE = timedelta(days=90)
_VERSION = re.compile(r"^v(\d+)\.(\d+)$")


class VersionState(enum.Enum):
    CURRENT = "Current"
    DEPRECATED = "ApiVersionDeprecated"  # within WARN_BEFORE of its end of life
    EXPIRED = "ApiVersionExpired"
    UNKNOWN = "ApiVersionUnknown"  # not in the table


def major_version(version: str) -> int | None:
    """The major number of a version string ("v24.0" -> 24); None when it is not one."""
    match = _VERSION.match(version)
    return int(match.group(1)) if match else None


def version_state(version: str, today: date) -> tuple[VersionState, date | None]:
    """Where `version` stands on `today`, with its end-of-life date when known."""
    if version not in END_OF_LIFE:
        major = major_version(version)
        known = [m for m in map(major_version, END_OF_LIFE) if m is not None]
        if major is not None and major > max(known):
            return VersionState.CURRENT, None  # newer than the table: fine
        if major is not None and major < min(known):
            return VersionState.EXPIRED, None
        return VersionState.UNKNOWN, None
    end = END_OF_LIFE[version]
    if end is None:
        return VersionState.CURRENT, None
    if today > end:
        return VersionState.EXPIRED, end
    if today >= end - WARN_BEFORE:
        return VersionState.DEPRECATED, end
    return VersionState.CURRENT, end
