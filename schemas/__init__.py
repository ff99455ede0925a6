"""Data contracts of ticktape: normalized records, venue wire formats, validation rules.

Everything here is plain Python (no Bytewax types) so that flows, connectors, sinks,
backfills and tests share one definition of what a tick, a candle or an event is.
"""
