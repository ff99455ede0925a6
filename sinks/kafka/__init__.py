"""Kafka outputs: prices, candles, events and dead letters on topics through an idempotent producer."""
