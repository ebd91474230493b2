"""Reconstruction: traditional peak finding + clusterization, and its threshold tuning."""
