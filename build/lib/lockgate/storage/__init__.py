"""State that outlives a request: databases, Redis, background writers."""
