"""A run's evaluation protocol: the dynamics on validation, and the test split before and after with its responses."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mstar_ray.config import MStarConfig
from mstar_ray.core.records import Prompt
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.core.seeds import derive_seed
from mstar_ray.eval.process_metrics import marked_response
from mstar_ray.eval.validation import EvalResult, Generator, Scorer, evaluate, evaluate_with_responses
from mstar_ray.loop.run_dir import RunDir

log = logging.getLogger("mstar")


def validation_due(cfg: MStarConfig, iteration: int) -> bool:
    """Validation runs every loop.eval_every iterations, for the pre-evolved model (0) and after the last."""
    every = cfg.loop.eval_every
    return bool(every) and (iteration % every == 0 or iteration == cfg.loop.iterations)


def validation_result(
    cfg: MStarConfig, rollout: Generator, prm: Scorer | None, prompts: Sequence[Prompt], params: SamplingParams
) -> EvalResult:
    """The dynamics on the validation prompts, with the same draws every time."""
    sampling = params.with_(seed=derive_seed(cfg.run.seed, "validation"))
    return evaluate(rollout, prompts, sampling, prm, cfg.prm.aggregation)


def held_out_result(
    cfg: MStarConfig,
    rollout: Generator,
    prm: Scorer | None,
    prompts: Sequence[Prompt],
    sampling: SamplingParams,
    run_dir: RunDir,
    label: str,
) -> EvalResult:
    """The test prompts at the configured temperature (the same protocol before and after); the greedy responses,
    steps marked and scored by the PRM when there is one, go to test_responses_<label>.jsonl for the report."""
    sampling = sampling.with_(temperature=cfg.rollout.temperature, seed=derive_seed(cfg.run.seed, "test"))
    result, greedy = evaluate_with_responses(rollout, prompts, sampling, prm, cfg.prm.aggregation)
    if prm is not None:
        prm.score(greedy)
    run_dir.write_records(f"test_responses_{label.replace('-', '_')}.jsonl", [marked_response(g) for g in greedy])
    log.info("%s test: greedy %.3f, Pass@%d %.3f", label, result.greedy_accuracy, result.k, result.pass_at_k)
    return result
