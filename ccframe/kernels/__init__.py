"""Numba kernels for waveform work (pure, on flat arrays, with preallocated outputs)."""
