"""Peers of the live job, for the ``bytewax-stock`` and ``quix`` bench scenarios: the same
job (decode -> dedupe -> 1m/5m/1h OHLCV -> a sink) written idiomatically with another
tool, and the check that their candles agree with ticktape's (:mod:`.compare`)."""
