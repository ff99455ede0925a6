"""The archive: event-log batches -> zstd Parquet objects, verified, marked, then deleted
locally (mark-then-delete); reading, verifying and reporting on it.
"""
