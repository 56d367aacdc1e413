"""HTTP edge: wire formats in and out, error rendering, routes."""
