"""Embedded Signup: the WhatsAppSignup resource, from an OAuth code to a WhatsAppTenant.

`model` (the resource and the objects it creates) and `flow` (step decisions, conditions)
are pure; `steps` does the I/O of one step at a time; `handlers` registers the kopf daemon
and the optional OAuth callback endpoint of `callback`. Import `handlers` to enable it.
"""
