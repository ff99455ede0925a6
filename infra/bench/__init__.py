"""Benchmarks: each scenario measures ticktape and a baseline in the same run and reports
the ratio, because absolute numbers on shared machines are noisy."""
