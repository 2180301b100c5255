"""The operator-to-worker contract: the resolved config the operator publishes to a sender
pool, the workers' heartbeats, the tenant signals they send back, and how every part names a
token without showing it. Imported by both sides; imports neither."""
