"""Shared Meta apps: the cluster-scoped `WhatsAppApp` and the tenants that use one.

- `model.py`, `selector.py`: the resource as typed Python and its namespace selector (pure);
- `decide.py`: an app's pass decided from what was gathered: its Secrets, Meta's answer,
  conditions, status and Events (pure);
- `tenant_ref.py`: what a tenant's `spec.appRef` resolves to (pure);
- `index.py`: the apps as the tenants' passes see them, in memory, and who uses which;
- `loop.py`: one app's passes (gather, Meta's check, apply), run by a kopf daemon;
- `receiver.py`: the webhook receiver's config Secret (`--webhook-receiver`);
- `handlers.py`: the kopf registration (apps and Namespaces), `wiring.py` the start-up.
"""
