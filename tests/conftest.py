"""Hypothesis profiles for every tier (HYPOTHESIS_PROFILE=ci|dev|fuzz; ``fuzz`` is the long
run of the hostile-input harness, e.g. ``HYPOTHESIS_PROFILE=fuzz .venv/bin/pytest
tests/unit/test_hostile_input.py``); shared helpers live in ``tests.support``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "fuzz", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
