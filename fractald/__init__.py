"""fractald: a supervised trading daemon built around Smart Money Concepts."""

__version__ = "0.1.0"
