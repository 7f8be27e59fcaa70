"""Hierarchical mesoscale data assimilation: ensemble Kalman filtering of region hyperparameters (see the HMDA issue)."""
