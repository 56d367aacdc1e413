"""Typed configuration: the schema, and loading it from YAML or the environment."""
