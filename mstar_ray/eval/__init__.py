"""Measuring a policy: verification and accuracy figures, validation dynamics, the temperature search, and the
paper's benchmarks."""
