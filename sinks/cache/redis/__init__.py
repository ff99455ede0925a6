"""The Redis cache backend: key layout, server-side compare-and-set, outage buffer, config and sink."""
