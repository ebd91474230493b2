"""Signal measurements on waveform batches shared by calibration and comparison."""
