"""What a WhatsAppTenant is and what its facts mean, as pure code (no I/O, no clients): the
spec, Meta's facts, conditions, claims on ids, when the next check is due, the SendingBlocked
judgement, JSON merge patches and the one decoder of Secret data."""
