"""Features that hang off the pipeline: metrics (and later cache, limits, budgets)."""
