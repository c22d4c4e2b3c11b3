"""Loaders of the files people write: positioned YAML, routing policies, profile imports."""
