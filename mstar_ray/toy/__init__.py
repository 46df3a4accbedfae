"""Tiny random-weight models and the synthetic colour-grid task: what tests and the quickstart run on."""
