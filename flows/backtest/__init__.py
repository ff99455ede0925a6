"""The backtester: chronological replay of trades, quotes or candles through a strategy
(``strategy``), a simulated venue (``broker``) whose orders are real order events in an
event log with projections, and a report (``metrics``, ``report``); ``run`` ties them
together, ``examples`` holds the shipped strategies."""
