"""Pre-evolution stages and PRM labelling with stand-ins for the actor groups (plain objects, no Ray): the engines
sleep while the trainers train, warm-up samples with the configured top-k, labelling survives an empty set."""

from __future__ import annotations

from contextlib import contextmanager

from mstar_ray.config.io import load_config
from mstar_ray.core.records import Prompt, PromptRollouts, Sample
from mstar_ray.loop import stages
from mstar_ray.loop.prm_stage import label_prompts
from mstar_ray.training.sft import TrainStats

PROMPTS = [
    Prompt(f"p{i}", "How many red cells?", ("/x.png",), str(i), reference=f"Count.\n\n# Answer\n\n{i}")
    for i in range(3)
]


class StandInRollout:
    """Answers every prompt correctly, remembers the sampling settings, and whether it is asleep."""

    def __init__(self) -> None:
        self.awake, self.params = True, []

    def generate(self, prompts, params, prefixes=None):
        self.params.append(params)
        return [PromptRollouts(p, [Sample(p.id, f"Count.\n\n# Answer\n\n{p.answer}", 5, True, 0)]) for p in prompts]

    @contextmanager
    def asleep(self):
        self.awake = False
        try:
            yield
        finally:
            self.awake = True


class StandInTrainers:
    """Records whether the engines slept through each training call."""

    def __init__(self, rollout: StandInRollout) -> None:
        self.rollout, self.trained_while_awake, self.examples = rollout, [], []

    def start_stage(self, optim, reset_to_base=False) -> None:
        self.optim = optim

    def train(self, examples, epochs, seed):
        self.trained_while_awake.append(self.rollout.awake)
        self.examples += examples
        return [TrainStats(1, 1, 0.5, 10, 1, 1e-3, [0.5])]


def _cfg(*extra: str):
    base = ["model.path=/m", "data.labeled=l", "data.validation=v", "data.seed_cot=s", "loop.eval_test=false"]
    return load_config(None, [*base, "rollout.top_k=5", *extra])


def test_seed_sft_and_warmup_train_with_the_engines_asleep_and_warmup_samples_with_top_k() -> None:
    rollout = StandInRollout()
    trainers = StandInTrainers(rollout)
    seed = stages.seed_sft(_cfg("seed_sft.enabled=true"), rollout, trainers, PROMPTS)
    warm = stages.warmup(_cfg("warmup.enabled=true", "warmup.samples_per_prompt=2"), rollout, trainers, PROMPTS)
    assert seed == {"examples": 3, "loss": 0.5} and warm == {"prompts": 3, "examples": 3, "loss": 0.5}
    assert trainers.trained_while_awake == [False, False] and rollout.awake
    assert [(p.top_k, p.n) for p in rollout.params] == [(5, 2)]
    # warm-up trains on the plain prompt, not the answer-conditioned one it sampled with
    assert [e.prompt for e in trainers.examples[3:]] == PROMPTS


def test_labelling_an_empty_prompt_set_reports_no_mean_label(tmp_path) -> None:
    report = label_prompts(_cfg("prm.enabled=true"), StandInRollout(), [], tmp_path / "labels.jsonl")
    assert report["responses"] == 0 and report["steps"] == 0 and report["mean_step_label"] is None
