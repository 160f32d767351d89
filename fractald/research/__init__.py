"""Research tools over the backtest: parameter spaces, walk-forward optimisation, sweeps, look-ahead checks."""
