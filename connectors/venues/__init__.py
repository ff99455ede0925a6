"""Venue feeds over WebSocket: per-venue protocols (:mod:`.binance`, :mod:`.coinbase`,
:mod:`.kraken`, :mod:`.bybit`), one connection with reconnects (:mod:`.connection`),
the REST snapshot client (:mod:`.rest`), the Bytewax ``websocket`` source
(:mod:`.source`) and the recorder behind ``ticktape record`` (:mod:`.record`)."""
