"""Contract tests: Meta's documented examples against GraphClient and the simulator."""
