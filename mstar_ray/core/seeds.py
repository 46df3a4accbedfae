"""Seeds derived from the run's seed and what a draw is for, never from call order, time or process."""

from __future__ import annotations

import hashlib
import zlib


def derive_seed(seed: int, *purpose: str | int) -> int:
    """A 63-bit seed for `purpose` (e.g. "prm", "value_head"), the same in every process and every run of `seed`."""
    digest = hashlib.sha256(repr((seed, *purpose)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def request_seed(seed: int, prompt_id: str, prefix: str, copy: int) -> int:
    """The seed of one sample: from the call's seed and what it asks for (prompt, response prefix, sample index),
    so samples depend neither on batching nor on how prompts are spread over the rollout workers."""
    return zlib.crc32(f"{seed}|{prompt_id}|{prefix}|{copy}".encode())
