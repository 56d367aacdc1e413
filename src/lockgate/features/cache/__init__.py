"""The response cache: exact and semantic, tenant-scoped, replayable as JSON or SSE."""
