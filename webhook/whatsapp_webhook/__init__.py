"""whatsapp-webhook: the receiver of Meta's webhooks (docs/webhook.md)."""
