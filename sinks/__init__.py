"""Outputs: the event log and its store, the cache (embedded and Redis), the candle store, the
archive and its object stores, dead letters, Kafka and QuestDB.

Layer: above ``connectors`` and ``flows.steps``; never imports the rest of ``flows``. Every
Bytewax sink here states its unit of parallelism, delivery and resume state.
"""
