"""In-memory sources: raw messages (tests, benches) and fixed item lists (internal flows)."""
