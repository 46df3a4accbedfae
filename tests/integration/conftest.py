"""A real local Ray instance per test module, on loopback, started and stopped by the tests themselves."""

from __future__ import annotations

import pytest
import ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()
