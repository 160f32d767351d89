"""Pure execution: order state machine, brackets, paper fill model, accounting, and the TradingEngine."""
