"""Toy strategies for fractald's plug-in tests."""
