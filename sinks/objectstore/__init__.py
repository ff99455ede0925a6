"""Object stores for the archive: the contract, a local directory, S3/MinIO, bounded retries."""
