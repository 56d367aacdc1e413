"""The web dashboard at /ui: live metric snapshots and the static page (package data)."""
