"""Shared test helpers: data paths, Hypothesis profiles (HYPOTHESIS_PROFILE=ci|dev)."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

DATA = Path(__file__).parent / "data"
TRADES = DATA / "trades"
VENUES = DATA / "venues"

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
