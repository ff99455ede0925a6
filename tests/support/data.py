"""Paths of the recorded data the tests share (real trades and venue messages)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent.parent / "data"
TRADES = DATA / "trades"
VENUES = DATA / "venues"
