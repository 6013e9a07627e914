"""``forewarn backtest``: a scenario's fleet through the real core and decision policy, scored."""
