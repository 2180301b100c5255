"""The controller runtime built on kopf: handler registration, the tenants' scheduler and
registry, the Secret metadata watch, the Kubernetes API door, and the only code that touches
kopf's private modules (listing, toggles, start-up). Logs, metrics, memory and diagnostics."""
