"""What the operator asks Meta's Graph API: the live check of a token and its number, the
WABA's phone-number list shared by its tenants, the one call budget, `appsecret_proof`."""
