"""One tenant's reconcile pass: gather the facts, let each stage (token renewal, row sync,
publication) plan from them and apply, and compose status, Events and `Ready` from the
stages' fragments in one pure step. `loop.TenantLoop` keeps a tenant's state between passes."""
