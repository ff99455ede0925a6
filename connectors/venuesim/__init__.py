"""``ticktape venue-sim``: a local venue (WebSocket + REST on 127.0.0.1) that replays
recorded or generated market data in each venue's protocol, with injectable faults.

Used by the tests (every venue client runs against it), the benchmarks and the demo
(``ticktape demo --venue binance``). Modules: :mod:`.market` (a deterministic synthetic
market), :mod:`.tape` (what the venue will send, and the reference books), one module per
venue protocol (:mod:`.binance`, :mod:`.coinbase`, :mod:`.kraken`, :mod:`.bybit`),
:mod:`.faults` (the fault plan) and :mod:`.server` (the server itself).
"""
