"""Observability shared by every layer above ``schemas``: run statistics and the Prometheus
endpoint (``metrics``), stage latency (``latency``) and logging (``logs``).
"""
