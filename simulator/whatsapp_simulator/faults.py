"""How the simulator fails: Meta's error envelope, and fault rules injected by tests.

`GraphError` carries a Meta error (code, subcode, message, details, HTTP status) and
renders Meta's envelope. A fault rule names an endpoint kind, optional filters (node id,
token fingerprint), a probability, an optional count after which it expires, and an
action. Rules are tried in
the order they were added; the first that fires wins. The RNG is seedable, and a rule with
probability 1 always fires, so tests are deterministic.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from whatsapp_simulator.codes import OAUTH, lookup, www_authenticate

# Code-190 texts per subcode as users saw them (Graph error handling names the subcodes,
# https://developers.facebook.com/docs/graph-api/guides/error-handling): 458
# yongjhih/RetroFacebook#21, 460 roughike/flutter_facebook_login#151, 464 (the double space
# is Meta's) mobolic/facebook-sdk#129, checkpoint 490 (459 on the page)
# facebook/facebook-python-business-sdk#525.
UNPARSEABLE = "Invalid OAuth access token - Cannot parse access token"
CHECKPOINT = "The user is enrolled in a blocking, logged-in checkpoint"
SESSION_TEXTS: dict[int, str] = {
    458: "The user has not authorized application{app_id}.",
    459: CHECKPOINT,
    460: "The session has been invalidated because the user changed their password or "
    "Facebook has changed the session for security reasons.",
    464: "Sessions for the user  are not allowed because the user is not a confirmed user.",
    467: "The access token is invalid since the user logged out or the token was revoked.",
    490: CHECKPOINT,
}


class GraphError(Exception):
    """A Meta error answer. The HTTP status defaults to Meta's for the code (codes.py);
    `kind` is the envelope's `type` (OAuthException unless Meta uses another)."""

    def __init__(
        self,
        code: int,
        subcode: int | None = None,
        message: str | None = None,
        details: str | None = None,
        status: int | None = None,
        *,
        transient: bool = False,
        kind: str = OAUTH,
    ) -> None:
        meta = lookup(code)
        self.code = code
        self.subcode = subcode
        self.message = message or meta.message
        self.details = details or meta.details or self.message
        self.status = status or meta.status
        self.transient = transient
        self.kind = kind
        super().__init__(self.message)

    def envelope(self, whatsapp: bool) -> dict[str, Any]:
        """Meta's envelope: https://developers.facebook.com/docs/graph-api/guides/error-handling"""
        error: dict[str, Any] = {"message": self.message, "type": self.kind}
        error["code"] = self.code
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.transient:
            error["is_transient"] = True
        if whatsapp:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16).replace("-", "x").replace("_", "Z")
        return {"error": error}

    def response(self, whatsapp: bool, headers: Mapping[str, str] | None = None) -> web.Response:
        out = dict(headers or {})
        if self.kind == OAUTH:  # Graph sends it on OAuthException errors (codes.py)
            out["WWW-Authenticate"] = www_authenticate(self.code, self.message)
        return web.json_response(self.envelope(whatsapp), status=self.status, headers=out)


def _meta_time(at: float) -> str:
    return time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(at))


def token_error(subcode: int, expires_at: int, now: float, app_id: str = "") -> GraphError:
    """The code-190 error for a token that stopped working (463 expired, 467 revoked...)."""
    if subcode == 463:
        text = (
            f"Session has expired on {_meta_time(expires_at)}. "
            f"The current time is {_meta_time(now)}."
        )
    else:
        text = SESSION_TEXTS.get(subcode, "The session is invalid.")
        text = text.format(app_id=f" {app_id}" if app_id else "")
    return GraphError(190, subcode, f"Error validating access token: {text}")


KINDS = frozenset(
    {
        "messages",
        "debug_token",
        "phone",
        "oauth",
        "phone_numbers",
        "subscribed_apps",
        "register",
        "unknown",
        "any",
    }
)
ACTIONS = frozenset({"http_status", "error_code", "timeout", "drop"})
DEFAULT_HANG_SECONDS = 30.0


@dataclass
class FaultRule:
    """One fault.

    - `http_status`: answer with that status (default 500) and a Meta-like 5xx body.
    - `error_code`: answer with the Meta error `code`/`subcode` (`http_status` defaults to
      Meta's status for that code, see codes.py).
    - `timeout`: wait `seconds`, then answer code 2 (or `code`) with HTTP 504 (the caller
      has usually given up by then). With `after_accept` the request is processed (a message is
      recorded) before the wait, and the real answer follows the wait.
    - `drop`: close the connection without answering; with `after_accept`, after processing.
    """

    id: str
    action: str
    kind: str = "any"
    node_id: str | None = None  # the phone number id (or WABA id) in the path
    token_fingerprint: str | None = None
    probability: float = 1.0
    count: int | None = None  # fires this many more times, then is removed
    http_status: int | None = None
    code: int | None = None
    subcode: int | None = None
    message: str | None = None
    details: str | None = None
    seconds: float = DEFAULT_HANG_SECONDS
    after_accept: bool = False
    hits: int = 0

    def matches(self, kind: str, node_id: str | None, token_fingerprint: str) -> bool:
        return (
            (self.kind == "any" or self.kind == kind)
            and (self.node_id is None or self.node_id == node_id)
            and (self.token_fingerprint is None or self.token_fingerprint == token_fingerprint)
        )

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return None if value is None else int(value)


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def parse_rule(data: Mapping[str, Any], rule_id: str) -> FaultRule:
    """Build a rule from admin JSON; ValueError names what is wrong."""
    action = str(data.get("action", ""))
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {sorted(ACTIONS)}")
    kind = str(data.get("kind", "any"))
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}")
    probability = float(data.get("probability", 1.0))
    if not 0.0 <= probability <= 1.0:
        raise ValueError("probability must be within 0..1")
    count = _opt_int(data, "count")
    if count is not None and count < 1:
        raise ValueError("count must be at least 1")
    rule = FaultRule(
        id=rule_id,
        action=action,
        kind=kind,
        node_id=_opt_str(data, "phone_number_id") or _opt_str(data, "node_id"),
        token_fingerprint=_opt_str(data, "token_fingerprint"),
        probability=probability,
        count=count,
        http_status=_opt_int(data, "http_status"),
        code=_opt_int(data, "code"),
        subcode=_opt_int(data, "subcode"),
        message=_opt_str(data, "message"),
        details=_opt_str(data, "details"),
        seconds=float(data.get("seconds", DEFAULT_HANG_SECONDS)),
        after_accept=bool(data.get("after_accept", False)),
    )
    if action == "error_code" and rule.code is None:
        raise ValueError("an error_code fault needs a code")
    return rule


class FaultBook:
    """The active rules and the RNG that decides the probabilistic ones."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.rules: list[FaultRule] = []
        self.applied = 0
        self._ids = itertools.count(1)

    def seed(self, seed: int | None) -> None:
        self.rng.seed(seed)

    def add(self, data: Mapping[str, Any]) -> FaultRule:
        rule = parse_rule(data, f"f{next(self._ids)}")
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def clear(self) -> None:
        self.rules = []
        self.applied = 0

    def pick(
        self, kind: str, node_id: str | None, token_fingerprint: str, *, after_accept: bool
    ) -> FaultRule | None:
        """The rule of this phase (before or after processing) that fires, if any.

        Spends one of the rule's count and removes the rule when that runs out.
        """
        for rule in self.rules:
            if rule.after_accept != after_accept or not rule.matches(
                kind, node_id, token_fingerprint
            ):
                continue
            if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                continue
            rule.hits += 1
            self.applied += 1
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            return rule
        return None


def drop(request: web.Request) -> web.Response:
    """Close the connection without an answer; aiohttp discards the response we return."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


async def inject(
    request: web.Request, rule: FaultRule, accepted: web.Response | None, whatsapp: bool
) -> tuple[web.Response, str]:
    """The response a fault produces (`accepted`: the real one, for after-accept rules),
    and the outcome to count."""
    if rule.action == "drop":
        return drop(request), "drop"
    if rule.action == "timeout":
        await asyncio.sleep(rule.seconds)
        if accepted is not None:
            return accepted, "timeout"
        code = 2 if rule.code is None else rule.code
        err = GraphError(code, rule.subcode, rule.message, rule.details, 504)
        return err.response(whatsapp), "timeout"
    if rule.action == "http_status":
        status = rule.http_status or 500
        code = rule.code if rule.code is not None else (1 if status == 500 else 2)
        err = GraphError(code, rule.subcode, rule.message, rule.details, status, transient=True)
        return err.response(whatsapp), f"http_{status}"
    if rule.code == 190 and rule.subcode is not None and rule.message is None:
        err = token_error(rule.subcode, int(time.time()), time.time())
        err.status = rule.http_status or err.status
    else:
        code = 1 if rule.code is None else rule.code
        err = GraphError(code, rule.subcode, rule.message, rule.details, rule.http_status)
    return err.response(whatsapp), str(err.code)
