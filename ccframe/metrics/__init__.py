"""Metrics: peak finding against truth, cluster-count bias and resolution."""
