"""Smart Money Concepts detectors: offline (vectorised, whole frame) and live (causal, bar by bar)."""
