"""A run folder: its layout (the names of its files), its lock, status and output manifest."""
