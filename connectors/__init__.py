"""Sources: everything that turns an outside feed into :class:`~ticktape.schemas.records.TickBatch` items.

Layer: above ``schemas`` (and ``infra.observability``); never imports ``sinks`` or ``flows``.
Every source here is a Bytewax ``FixedPartitionedSource`` whose docstring states its unit of
parallelism, delivery and resume state.
"""
