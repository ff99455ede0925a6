"""The cache: one interface (``api``), the embedded backend (memory + SQLite), the Redis
backend (``redis``), the Bytewax sink, metrics and start-up warming.
"""
