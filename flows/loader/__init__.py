"""The batch loader: vendor quote/run files -> validated, deduplicated Parquet analytics store
with a data-quality report (``ticktape load``). A batch product beside the streaming job.
"""
