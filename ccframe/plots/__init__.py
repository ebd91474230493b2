"""HEP-style plots of a run and its HTML report."""
