"""Placement groups on a real two-node Ray cluster (two raylets on this machine, via ray.cluster_utils)."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from mstar_ray.config import ConfigError
from mstar_ray.config.io import load_config
from mstar_ray.groups.placement import Placement
from mstar_ray.groups.rollout import RolloutGroup
from mstar_ray.groups.trainers import PolicyTrainerGroup

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield
    ray.shutdown()
    cluster.shutdown()


def _config(model: Path, data: dict[str, Path], *extra: str):
    base = [f"model.path={model}", f"data.labeled={data['labeled']}", f"data.validation={data['validation']}"]
    return load_config(None, [*base, "loop.eval_test=false", "resources.torch_threads=1", *extra])


def node_of(actor: ray.actor.ActorHandle) -> str:
    return ray.get(actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))


def test_strict_spread_puts_rollout_and_trainer_on_different_nodes(two_nodes, tiny_model, tiny_data) -> None:
    cfg = _config(tiny_model, tiny_data, "resources.placement=STRICT_SPREAD")
    placement = Placement(cfg)
    try:
        assert placement.bundles == [{"CPU": 1.0}, {"CPU": 1.0}]
        rollout = RolloutGroup(cfg, str(tiny_model), placement)
        trainers = PolicyTrainerGroup(cfg, str(tiny_model), placement=placement)
        assert node_of(rollout.workers[0]) != node_of(trainers.ranks[0])
    finally:
        placement.remove()


def test_colocated_bundles_keep_rollout_i_with_trainer_i(two_nodes, tiny_model, tiny_data) -> None:
    cfg = _config(
        tiny_model,
        tiny_data,
        "resources.colocate=true",
        "resources.placement=STRICT_SPREAD",
        "resources.rollout_workers=2",
        "resources.trainer_ranks=2",
        "resources.cpus_per_rollout_worker=0.5",
        "resources.cpus_per_trainer=0.5",
    )
    placement = Placement(cfg)
    try:
        assert placement.bundles == [{"CPU": 1.0}, {"CPU": 1.0}]
        assert placement.slots == {"rollout": [0, 1], "trainer": [0, 1]}
        rollout = RolloutGroup(cfg, str(tiny_model), placement)
        trainers = PolicyTrainerGroup(cfg, str(tiny_model), placement=placement)
        nodes = [(node_of(rollout.workers[i]), node_of(trainers.ranks[i])) for i in range(2)]
        assert nodes[0][0] == nodes[0][1] and nodes[1][0] == nodes[1][1] and nodes[0][0] != nodes[1][0]
    finally:
        placement.remove()


def test_a_layout_no_node_can_hold_fails_fast_saying_what_is_missing(two_nodes, tiny_model, tiny_data) -> None:
    # 2 CPUs in all, so the totals check passes, but STRICT_PACK needs both bundles on one 1-CPU node.
    cfg = _config(tiny_model, tiny_data, "resources.placement=STRICT_PACK", "resources.placement_timeout_s=3")
    with pytest.raises(ConfigError) as err:
        Placement(cfg)
    message = str(err.value)
    assert "STRICT_PACK" in message and "rollout x1 ({'CPU': 1.0})" in message and "CPU 1, GPU 0" in message
    assert "resources.placement_timeout_s=3s" in message
    tried = [pg for pg in ray.util.placement_group_table().values() if pg["strategy"] == "STRICT_PACK"]
    assert tried and all(pg["state"] == "REMOVED" for pg in tried)


def test_colocation_needs_matching_counts() -> None:
    with pytest.raises(ValueError, match="resources.colocate needs resources.rollout_workers"):
        load_config(
            None,
            [
                "model.path=m",
                "data.labeled=l",
                "data.validation=v",
                "loop.eval_test=false",
                "resources.colocate=true",
                "resources.rollout_workers=2",
            ],
        )
