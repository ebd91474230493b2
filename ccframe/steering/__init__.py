"""Steering files: schema, loading, overrides, validation."""
