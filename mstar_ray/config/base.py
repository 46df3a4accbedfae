"""The config's vocabulary: its error type, the strict base of every section, and the enums of its choices."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


class Section(BaseModel):
    # strict: "4" is not an int and "yes" is not a bool; enum fields opt out to accept their string values
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True, frozen=True)


class OnBadRow(str, Enum):
    """What to do with a dataset row that cannot be used."""

    SKIP = "skip"
    ERROR = "error"


class PlacementStrategy(str, Enum):
    """How a run's placement group lays its bundles over the nodes (Ray's placement group strategies)."""

    PACK = "PACK"
    SPREAD = "SPREAD"
    STRICT_PACK = "STRICT_PACK"
    STRICT_SPREAD = "STRICT_SPREAD"


class RolloutBackend(str, Enum):
    """Rollout engine implementations."""

    TRANSFORMERS = "transformers"
    VLLM = "vllm"


class TrainingMode(str, Enum):
    """Where each iteration starts and whether optimizer state carries over (docs/recipe.md, The loop)."""

    CONTINUOUS = "continuous"
    ITERATIVE_RFT = "iterative_rft"
    REST_EM = "rest_em"


class SelectionRule(str, Enum):
    """How training responses are chosen among a prompt's correct samples."""

    RANDOM_K = "random_k"
    ALL_CORRECT = "all_correct"
    PRM_TOP_K = "prm_top_k"
    PRM_THRESHOLD = "prm_threshold"
    ORACLE_TOP_K = "oracle_top_k"  # process-correct responses first, by the checker: a ceiling on data with truth
    ORACLE_SOUND = "oracle_sound"  # only process-correct responses: the ceiling of threshold selection


PRM_RULES = (SelectionRule.PRM_TOP_K, SelectionRule.PRM_THRESHOLD)
ORACLE_RULES = (SelectionRule.ORACLE_TOP_K, SelectionRule.ORACLE_SOUND)

# Validation figures (metrics.jsonl keys, higher is better) that can choose the best checkpoint
BEST_METRICS = (
    "val_greedy_accuracy",
    "val_pass_at_k",
    "val_sample_accuracy",
    "val_reward_pass_at_2",
    "val_random_pass_at_2",
)

# The paper's evaluation benchmarks by their eval.benchmarks names (mstar_ray.eval.benchmarks.registry loads them)
BENCHMARK_NAMES = ("mathvista", "m3cot", "mmstar", "mmbench", "ai2d")


class ScoreAggregation(str, Enum):
    """How a response's step scores combine into one score (docs/recipe.md, PRM: minimum by default)."""

    MIN = "min"
    MEAN = "mean"
    LAST = "last"
    PRODUCT = "product"


class LabelKind(str, Enum):
    """Monte-Carlo step labels: share of completions reaching the answer (soft) or whether any does (hard)."""

    SOFT = "soft"
    HARD = "hard"


class TemperatureCriterion(str, Enum):
    """What the automatic temperature search maximises on the validation set."""

    REWARD_PASS_AT_2 = "reward_pass_at_2"
    PASS_AT_K = "pass_at_k"


class RunStage(str, Enum):
    """Points of a run where the policy is evaluated on the benchmarks."""

    BASE = "base"  # model.path, before seed SFT and warm-up
    PRE_EVOLVED = "pre_evolved"  # after seed SFT / warm-up (the paper's warm-up row)
    FINAL = "final"  # after the self-evolving iterations
