"""The process reward model: Monte-Carlo step labels, the model, its training and scoring."""
