"""The M-STaR loop: the driver, its stages, selection, recovery, checkpoints and the run directory."""
