"""Waveform simulation: drift-cell physics, pulse synthesis and the `simulate` stage."""
