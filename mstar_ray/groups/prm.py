"""The PRM actors `prm-0..N-1`: responses to score are split evenly over them."""

from __future__ import annotations

from collections.abc import Sequence

import ray

from actors.prm_worker import PRMWorker
from mstar_ray.config import MStarConfig
from mstar_ray.core.records import Prompt, PromptRollouts, Sample
from mstar_ray.groups.base import RestartingGroup, split_evenly
from mstar_ray.groups.placement import Placement, actor_log_file, actor_options


class PRMGroup(RestartingGroup):
    """PRM scoring actors, each holding one copy of the trained PRM."""

    def __init__(self, cfg: MStarConfig, prm_path: str, placement: Placement | None = None) -> None:
        self.cfg, self.prm_path = cfg, prm_path
        super().__init__(cfg, placement, [f"prm-{i}" for i in range(cfg.resources.prm_workers)])

    def _start(self, index: int) -> ray.actor.ActorHandle:
        r = self.cfg.resources
        options = actor_options(self.placement, "prm", index, r.cpus_per_prm_worker, r.gpus_per_prm_worker)
        use_gpu, batch = r.gpus_per_prm_worker > 0, self.cfg.prm.batch_size
        return PRMWorker.options(name=self.names[index], **options).remote(
            self.names[index],
            self.prm_path,
            self.cfg.model.dtype,
            use_gpu,
            batch,
            r.torch_threads if r.torch_threads_per_prm_worker is None else r.torch_threads_per_prm_worker,
            r.cpus_per_prm_worker,
            self.cfg.model.trust_remote_code,
            self.cfg.run.deterministic,
            actor_log_file(self.placement, self.names[index]),
        )

    def score(self, rollouts: Sequence[PromptRollouts], only_correct: bool = False) -> int:
        """Set `step_scores` on every sample (or every verified-correct one); returns how many were scored."""
        targets: list[tuple[Prompt, Sample]] = [
            (group.prompt, s) for group in rollouts for s in group.samples if s.correct or not only_correct
        ]
        # A prompt's samples often repeat one another (low temperatures, short answers): each distinct response
        # is scored once and its scores shared.
        distinct = list(dict.fromkeys((prompt, s.text) for prompt, s in targets))
        shards = split_evenly(distinct, len(self.workers))
        scores = self.map_shards(lambda worker, _, shard: worker.score.remote(shard), shards)
        by_response = dict(zip(distinct, scores, strict=True))
        for prompt, sample in targets:
            sample.step_scores = list(by_response[(prompt, sample.text)])
        return len(targets)
