"""Ray actor classes: each owns one resource and wraps a plain class from `mstar_ray`."""
