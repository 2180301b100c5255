"""The token lifecycle: when to renew (pure), the staged refresh and retirement of the
previous token (I/O), and the token stage of a tenant's pass."""
