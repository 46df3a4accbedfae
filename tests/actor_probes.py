"""Reading what a live actor holds, for tests only: the production actors carry no test methods.

Ray's `__ray_call__` runs a function on the actor's own instance inside its process.
"""

from __future__ import annotations

import os

import ray
import torch


def engine_weights(worker: ray.actor.ActorHandle) -> dict[str, torch.Tensor]:
    """The policy weights a rollout worker's engine holds (transformers backend)."""
    return ray.get(worker.__ray_call__.remote(lambda self: self.engine.state_dict()))


def trainer_checksum(rank: ray.actor.ActorHandle) -> float:
    """Sum of every parameter of a trainer rank, to check that data-parallel ranks hold the same weights."""
    return ray.get(rank.__ray_call__.remote(lambda self: self.trainer.weights_checksum()))


def pid_of(actor: ray.actor.ActorHandle) -> int:
    """The process id of an actor."""
    return ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
