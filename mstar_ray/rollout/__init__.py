"""Rollout engines: generate K responses per (image, question) prompt."""
