"""Pure step logic of the live flow (no Bytewax types): the keyed per-shard step, bounded
dedupe and gap detection, and the candle engine (streaming and vectorized).
"""
