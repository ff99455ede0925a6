"""The live dataflow: ``build_flow()`` and how batches are routed to shards and sink partitions.

Under Bytewax's own runner: ``python -m bytewax.run "ticktape.flows.live:build_flow()"``.
"""

from ticktape.flows.live.dataflow import build_flow

__all__ = ["build_flow"]
