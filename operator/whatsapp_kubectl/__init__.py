"""`kubectl whatsapp`: a kubectl plugin for WhatsApp tenants (the `kubectl-whatsapp` command).

`view` holds the pure parts (rows from tenant objects, table rendering, outcomes, the health
report); `kube` the Kubernetes API calls; `cli` the commands.
"""
