"""The contract corpus: Meta's own documented request/response examples, as data.

Each fixture names the page it comes from (`source`, plus a `# Source:` comment where it is
defined) and how sure we are of it (`source_kind`):

- ``meta-doc``: copied from a developers.facebook.com page (the example itself, or a row of a
  documented table put into the documented error envelope, see `derived`);
- ``sdk``: copied from a public SDK that reproduces Meta's examples (Meta's own WhatsApp
  Node.js SDK, or other client libraries) because the Meta page has no concrete example;
- ``observed``: an answer reported verbatim by users in a public issue ("as seen by users"),
  used where Meta's page does not show the answer or its HTTP status.

Nothing here is invented: where a value is not documented anywhere we found, the field is
None (`http_status=None`: status not documented; `title=None`: the code's title, which Meta
puts in `message` as ``(#code) title``, is not documented in English) and the tests assert
only what is documented. Ids, tokens, wamids and fbtrace_ids are the example values of the
page they come from.

Some Meta pages were read through a scrape kept in a public repository (the page's URL is
still the source); `seen_via` says which. The fixtures are plain frozen dataclasses so the
client and simulator contract tests can share them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SourceKind = Literal["meta-doc", "sdk", "observed"]
# Which GraphClient operation a fixture exercises (and which simulator route answers it).
Call = Literal[
    "send_message",
    "register_number",
    "debug_token",
    "phone_number",
    "waba_phone_numbers",
    "exchange_token",
    "exchange_code",
]


@dataclass(frozen=True)
class Request:
    """A documented request. `path` is a template; `path_params` are the page's example values."""

    method: str
    path: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    def url_path(self, version: str | None = None) -> str:
        params = dict(self.path_params)
        if version is not None:
            params["version"] = version
        path = self.path
        for name, value in params.items():
            path = path.replace("{" + name + "}", value)
        return path


@dataclass(frozen=True)
class Response:
    """A documented response. `status` None: the HTTP status is not documented anywhere."""

    status: int | None
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Fixture:
    name: str
    call: Call
    request: Request
    response: Response
    source: str
    source_kind: SourceKind
    seen_via: str = ""  # where the page's text was read, when not on the live page itself
    observed: str = ""  # "as seen by users" link (status or text not on Meta's page)
    derived: str = ""  # how the body was assembled from documented parts, when it was
    notes: str = ""
    # Another fixture from Meta's current page that replaces this one (an older revision's
    # answer): the client must still parse it; the simulator answers as the newer page.
    superseded_by: str = ""
    # For error fixtures: the code's documented title (None: not documented in English).
    title: str | None = None

    @property
    def is_error(self) -> bool:
        return isinstance(self.response.body, Mapping) and "error" in self.response.body

    @property
    def error(self) -> Mapping[str, Any]:
        err: Mapping[str, Any] = self.response.body["error"]
        return err

    @property
    def message_documented(self) -> bool:
        """Whether the error `message` text itself is documented (or observed)."""
        return self.is_error and "message" in self.error

    @property
    def details(self) -> str | None:
        data = self.error.get("error_data") if self.is_error else None
        return data.get("details") if isinstance(data, Mapping) else None


# --- sources used by several modules --------------------------------------------------

META_ERROR_CODES = (
    "https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes"
)
# The English page as served in September 2026 ("markdown-served" copy of the page, fetched
# 2026-09-11, found through the code index): Code | details | Possible reasons. This revision
# has neither a title column nor an HTTP status column any more.
ERRORS_SEEN_EN = "developers.facebook.com error-codes page, markdown copy fetched 2026-09-11"
# The same page, scraped 2026-01-24 in pt_BR, still had the HTTP status column ("Código de
# status HTTP") and the (translated) titles.
ERRORS_SEEN_STATUS = (
    "github.com/yvfl/api-whatsapp-docs docs/suporte/error_codes.md "
    "(scrape of the page, 2026-01-24, pt_BR: HTTP status column)"
)
# An older English revision of the same page with the Code/title/Description/HTTP status
# columns, for the English titles.
ERRORS_SEEN_TITLES = "https://www.scribd.com/document/733119031/facebook-error-code"
GRAPH_ERROR_HANDLING = "https://developers.facebook.com/docs/graph-api/guides/error-handling"
YVFL = "github.com/yvfl/api-whatsapp-docs"

# The example ids Meta's WhatsApp pages use throughout.
WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"


def all_fixtures() -> list[Fixture]:
    """Every fixture of the corpus, names unique."""
    from . import fixtures_errors, fixtures_messages, fixtures_phones, fixtures_tokens

    found = [
        *fixtures_messages.FIXTURES,
        *fixtures_phones.FIXTURES,
        *fixtures_tokens.FIXTURES,
        *fixtures_errors.FIXTURES,
    ]
    names = [f.name for f in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate fixture names: {sorted(duplicates)}")
    dangling = [f.name for f in found if f.superseded_by and f.superseded_by not in names]
    if dangling:
        raise ValueError(f"superseded_by names no fixture in: {dangling}")
    return found
