"""History files (freqtrade JSON, CSV, Kraken REST JSON) and Arrow tables as tick sources."""
