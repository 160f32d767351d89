"""Test helpers for the market data feed: recorded data access and a misbehaving local venue."""
