"""fractald: a supervised trading daemon built around Smart Money Concepts."""

__version__ = "0.2.0"
