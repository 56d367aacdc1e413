"""lockgate's own HTTP/1.1 server for the API endpoints (see `site.py`)."""
