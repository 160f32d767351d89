"""Pure risk: sizing, portfolio gates, circuit breakers, execution quality, strategy reliability."""
