"""Reading and writing ROOT files (uproot), atomic outputs."""
