"""What a tenant's `spec.appRef` resolves to, decided purely.

A tenant may use a WhatsAppApp when the app exists, selects the tenant's namespace (the
namespace's labels against the app's `namespaceSelector`; no selector: no namespace) and is
Ready. Otherwise its `AppResolved` condition and `Ready` say why: `AppNotFound`,
`AppNotAllowed`, `AppNotReady`. The app gives the tenant its `appsecret_proof`, the Refresh
strategy's app credentials, its default Graph API version, the seed row's `verify_token`, and
(with the webhook receiver) its number's entry in the receiver's config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from whatsapp_contract.webhook import AppEntry, NumberEntry
from whatsapp_operator.apps.selector import LabelSelector, selects
from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.model.facts import PhoneFacts, Verdict


@dataclass(frozen=True)
class ResolvedApp:
    """A WhatsAppApp as its tenants see it: the apps index's entry (apps/index.py)."""

    name: str
    app_id: str
    ready: bool
    reason: str  # Ready's reason
    message: str  # Ready's message
    app_secret: str | None = field(default=None, repr=False)  # None: not read
    verify_token: str | None = field(default=None, repr=False)
    graph_api_version: str | None = None
    require_proof: bool = False
    selector: LabelSelector | None = None

    @property
    def usable(self) -> bool:
        return self.ready and self.app_secret is not None and self.verify_token is not None

    def receiver_entry(self) -> AppEntry | None:
        """The app in the webhook receiver's config (only a Ready app is)."""
        if not self.usable:
            return None
        assert self.app_secret is not None
        assert self.verify_token is not None
        return AppEntry.model_validate(
            {"app_id": self.app_id, "name": self.name, "app_secret": self.app_secret,
             "verify_token": self.verify_token},
            strict=False,
        )  # fmt: skip


@dataclass(frozen=True)
class AppRefOutcome:
    """The `AppResolved` verdict, and the app when the tenant may use it."""

    verdict: Verdict
    app: ResolvedApp | None = None
    pending: bool = False  # the app exists, its first pass is still to come: wait for it

    @property
    def usable(self) -> bool:
        return self.app is not None


def app_pending(name: str) -> AppRefOutcome:
    why = f"WhatsAppApp {name!r} is being read (the operator started): waiting for it"
    return AppRefOutcome(Verdict("Unknown", Reason.NOT_CHECKED, why), pending=True)


def judge_app_ref(
    name: str, app: ResolvedApp | None, namespace: str, labels: Mapping[str, str] | None
) -> AppRefOutcome:
    """May the tenant in `namespace` (whose labels are `labels`; None: not known) use the
    WhatsAppApp `name` (`app`; None: there is none)?"""
    if app is None:
        why = f"WhatsAppApp {name!r} not found (kubectl get waapp)"
        return AppRefOutcome(Verdict("False", Reason.APP_NOT_FOUND, why))
    if app.selector is None:
        why = (
            f"WhatsAppApp {name!r} has no spec.namespaceSelector: no namespace may use it "
            "(namespaceSelector: {} allows every namespace)"
        )
        return AppRefOutcome(Verdict("False", Reason.APP_NOT_ALLOWED, why))
    if not selects(app.selector, labels):
        known = "" if labels is not None else " (its labels are not known yet)"
        why = (
            f"namespace {namespace!r}{known} is not selected by WhatsAppApp {name!r}'s "
            f"namespaceSelector {app.selector.describe()}"
        )
        return AppRefOutcome(Verdict("False", Reason.APP_NOT_ALLOWED, why))
    if not app.usable:
        why = f"WhatsAppApp {name!r} is not Ready ({app.reason}): {app.message}"
        return AppRefOutcome(Verdict("False", Reason.APP_NOT_READY, why))
    verdict = Verdict("True", "Resolved", f"WhatsAppApp {name!r} (app {app.app_id})")
    return AppRefOutcome(verdict, app)


def require_proof(outcome: AppRefOutcome, token: bool, proof: bool) -> AppRefOutcome:
    """An app with `requireAppSecretProof` is never used without the proof: Meta would
    refuse every call. (With a Ready app the proof is computed for every token; this keeps
    a config without one from ever reaching the workers.)"""
    app = outcome.app
    if app is None or not app.require_proof or not token or proof:
        return outcome
    why = f"WhatsAppApp {app.name!r} requires appsecret_proof and none could be computed"
    return AppRefOutcome(Verdict("False", Reason.APP_SECRET_PROOF_REQUIRED, why))


def number_entry(
    *,
    app: ResolvedApp,
    tenant_id: str,
    waba_id: str,
    phone_number_id: str,
    namespace: str,
    name: str,
    pool: str,
    phone: PhoneFacts | None,
) -> NumberEntry:
    """The tenant's number as the webhook receiver routes it."""
    return NumberEntry(
        phone_number_id=phone_number_id,
        waba_id=waba_id,
        display_phone_number=phone.display_phone_number if phone is not None else None,
        tenant_id=tenant_id,
        namespace=namespace,
        name=name,
        pool=pool,
        app_id=app.app_id,
    )
