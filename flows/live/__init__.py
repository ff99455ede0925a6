"""The live dataflow: ``build_flow()`` and how batches are routed to shards and sink partitions.

Under Bytewax's own runner: ``python -m bytewax.run "ticktape.flows.live:build_flow()"``.
"""
