"""PRM actor: scores responses with one process reward model copy."""

from __future__ import annotations

from collections.abc import Sequence

import ray

from actors.process import configure_process
from mstar_ray.core.records import Prompt
from mstar_ray.prm.scorer import PRMScorer
from mstar_ray.telemetry.profile import BusySpan, busy, drain


@ray.remote
class PRMWorker:
    """Returns per-step scores for (prompt, response) pairs."""

    @busy
    def __init__(
        self,
        name: str,
        prm_path: str,
        dtype: str,
        use_gpu: bool,
        batch_size: int,
        torch_threads: int,
        cpus: float,
        trust_remote_code: bool = False,
        deterministic: bool = False,
        log_file: str | None = None,
    ) -> None:
        configure_process(torch_threads, cpus, deterministic, log_file)
        self.profile_name = name
        self.scorer = PRMScorer(prm_path, dtype, "cuda" if use_gpu else "cpu", batch_size, trust_remote_code)

    def drain_busy(self) -> list[BusySpan]:
        return drain(self)

    @busy
    def score(self, items: Sequence[tuple[Prompt, str]]) -> list[list[float]]:
        return self.scorer.score(items)
