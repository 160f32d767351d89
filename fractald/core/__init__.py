"""Pure domain: no trio, no I/O, no wall clock (tests/test_core_purity.py enforces it)."""
