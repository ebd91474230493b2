"""Overlays of several inputs (simulation, beam-test data) with ratio panels."""
