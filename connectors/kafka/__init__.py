"""Kafka: the seekable, bounded tick source, offset resolution, shared client configuration,
and the producer behind ``ticktape produce``.
"""
