"""whatsapp-operator: the kopf operator of WhatsAppTenant resources.

Importing this package first makes kubernetes_asyncio import its classes when they are first
used (lazy_client.py): kopf imports that package whenever it is installed, and its 767 model
classes alone were about 39 MB of the operator's memory. A process that imported
kubernetes_asyncio before this package keeps the usual, eager package.
"""

from . import lazy_client

lazy_client.install()
