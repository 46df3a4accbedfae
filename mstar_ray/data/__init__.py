"""Datasets: records, loaders and the synthetic task."""
