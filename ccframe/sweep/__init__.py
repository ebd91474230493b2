"""Hyper-parameter sweeps: one steering file per trial, local or HTCondor execution, and a
leaderboard of the trials' metrics (`ccframe sweep`, `ccframe collect`)."""
