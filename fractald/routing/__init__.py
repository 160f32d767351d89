"""Venue-agnostic routing decisions (pure): crash recovery by client order id, venue-held stops."""
