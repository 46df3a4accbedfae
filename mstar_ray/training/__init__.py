"""Training: DeepSpeed SFT ranks."""
