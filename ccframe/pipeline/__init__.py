"""Wiring of the stages a steering file enables, and the run folder they write into."""
