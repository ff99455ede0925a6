"""The orders flow: order messages from Kafka or files through the order state machine
into the orders event log, whose projections (orders, positions, open orders, PnL) are
kept current beside it (``ticktape orders run``)."""
