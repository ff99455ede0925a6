"""Backfills: rebuild candles (and every output on the streaming path) for past periods from
history files or the archive, and repair the windows of sequence gaps.
"""
