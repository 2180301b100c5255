"""whatsapp-operator: the kopf operator of WhatsAppTenant resources.

One folder per concern (the README's layout table lists them):

- `tenant/`: one tenant's reconcile pass: gather the facts, let each stage plan and apply,
  compose the status, Events and `Ready`;
- `model/`: what a tenant is and what its facts mean, pure: spec, Meta's facts, conditions,
  id claims, when the next check is due, the Secret decoder;
- `meta/`: what the operator asks Meta: the live check, a WABA's numbers, the call budget,
  `appsecret_proof`;
- `tokens/`: the token lifecycle: renewal decisions, the staged refresh, its stage of a pass;
- `postgres/`: the seed's table: database, migrations, rows, sync, encryption, audit trail,
  the `whatsapp-credentials` CLI;
- `pools/`: the sender pools: their published config, their workers' heartbeats and signals;
- `runtime/`: the controller runtime on kopf: handlers, scheduler, registry, Secret watch,
  the kopf patches, the Kubernetes door, logs, metrics, memory;
- `signup/`: Embedded Signup, from an OAuth code to a WhatsAppTenant;
- `apps/`: shared Meta apps (the cluster-scoped WhatsAppApp), what a tenant's `appRef`
  resolves to, and the webhook receiver's config.

Importing this package has no side effect; `cli.main` installs the lazy kubernetes_asyncio
(`runtime/lazy_client.py`) before kopf is imported.
"""
