"""The local Parquet candle store (upsert by revision on read) and its Bytewax sink."""
