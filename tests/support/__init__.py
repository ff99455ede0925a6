"""The one support package of every test tier: record factories, data paths, flow runners,
output readers, crash helpers, wire-level listeners and bench checks."""
