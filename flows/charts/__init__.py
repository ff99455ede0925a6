"""Charts (PNG) drawn from the job's stores."""
