"""Datasets in the formats users bring: LLaVA JSON, flat JSON/JSONL, parquet, `save_to_disk`; rows and images."""
