"""mstar-ray: M-STaR self-evolving training for multimodal reasoning models on Ray."""

__version__ = "0.1.0"
