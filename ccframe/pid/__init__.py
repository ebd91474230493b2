"""Particle identification from cluster counting: tracks, dN/dx and separation power."""
