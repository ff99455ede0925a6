"""The event log: append-only batches indexed by SQLite (``log``), reading it (``store``),
aggregate snapshots, point-in-time state, export, body compression and the Bytewax sink.
"""
