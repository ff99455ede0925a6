"""The top layer: Bytewax dataflows built from the pure steps, their configuration, the
runner, backfills, the batch loader and the ``ticktape`` command line.
"""
