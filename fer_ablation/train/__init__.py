"""Training: the Lightning module, the fit of one composed config and the run's records, and what a run's speed
depends on (precision and memory format, third-party log noise, the sweep's progress line)."""
