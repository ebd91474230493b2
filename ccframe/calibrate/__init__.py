"""`ccframe calibrate`: fit the simulator's electronics to a data file without truth
(docs/calibration.md): measure baseline, noise spectrum, isolated-pulse shape and amplitudes
and the pulse-time window, then correct the simulation by forward folding."""
