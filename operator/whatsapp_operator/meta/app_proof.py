"""A tenant's `appsecret_proof`: its token's HMAC keyed by the Meta app's secret.

Meta apps with "Require App Secret" refuse every call made with a user or system-user token
that does not carry it. The app secret comes from the tenant's
`spec.rotation.appCredentialsSecretRef` (a signup sets it to the signup's app credentials);
the proof is computed once per pass for the token in hand and travels with it
(`ResolvedToken.proof`) to every Graph call of the pass and into the published config, so
that workers send it too. A tenant with `spec.appRef` gets it from its WhatsAppApp's secret
instead (`app_proof`). The app secret itself goes nowhere: not to workers, status, logs or
events. A Secret that cannot be read is said in SecretResolved's message and the calls go
without a proof (Meta then answers AppSecretProofRequired if the app needs one).
"""

from __future__ import annotations

from whatsapp_graph.client import appsecret_proof
from whatsapp_operator.model.secret_data import SecretOutcome, read_app_credentials, with_proof
from whatsapp_operator.model.spec import AppCredentialsRef
from whatsapp_operator.runtime.kube import Kube, KubeError
from whatsapp_operator.runtime.logs import REDACTOR

NO_PROOF = "Graph calls go without appsecret_proof"


async def attach_proof(
    kube: Kube, namespace: str, ref: AppCredentialsRef | None, outcome: SecretOutcome
) -> SecretOutcome:
    """`outcome` with its token's proof (or a note why there is none); unchanged when the
    tenant names no app credentials or has no token."""
    if ref is None or outcome.token is None:
        return outcome
    where = f"app credentials Secret {ref.name!r}"
    try:
        snapshot = await kube.read_secret(namespace, ref.name)
    except KubeError as exc:
        return with_proof(outcome, None, f"{where} unreadable ({exc}): {NO_PROOF}")
    credentials = read_app_credentials(
        snapshot.data if snapshot is not None else None,
        ref.name,
        ref.app_id_key,
        ref.app_secret_key,
    )
    if credentials.app_secret is None:
        return with_proof(outcome, None, f"{credentials.problem}: {NO_PROOF}")
    REDACTOR.add(credentials.app_secret)
    proof = appsecret_proof(outcome.token.value, credentials.app_secret)
    REDACTOR.add(proof)
    return with_proof(outcome, proof, f"appsecret_proof from Secret {ref.name!r}")


def app_proof(outcome: SecretOutcome, app: str, app_secret: str) -> SecretOutcome:
    """`outcome` with its token's proof keyed by a WhatsAppApp's secret (spec.appRef)."""
    if outcome.token is None:
        return outcome
    proof = appsecret_proof(outcome.token.value, app_secret)
    REDACTOR.add(proof)
    return with_proof(outcome, proof, f"appsecret_proof from WhatsAppApp {app!r}")
