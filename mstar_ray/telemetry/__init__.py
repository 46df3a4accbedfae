"""Where a run's figures go: metrics sinks and progress, the dynamics plot, and the run report."""
