"""Per-key limits (rpm, tpm, concurrency): the algorithm, its stores, headers and policy."""
