"""Trial sizes and concurrency from what a cluster can grow to (sweeps.capacity), hand-computed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sweeps import capacity
from sweeps.spec import SweepSpec

ROOT = Path(__file__).resolve().parents[1]


def _spec(**fields) -> SweepSpec:
    return SweepSpec(model="tft", **fields)


def _aws_after_ray_up() -> dict:
    """cluster.yaml as `ray up` writes it to the head (~/ray_bootstrap_config.yaml): Ray's AWS
    provider fills the worker type's resources from its instance type (g5.xlarge: 4 vCPU, 1 GPU)."""
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["resources"] = {"CPU": 4, "GPU": 1}
    return config


def test_cluster_yaml_grown_from_zero_gives_a_gpu_per_trial_and_one_trial_per_worker():
    found = capacity.from_autoscaler_config(_aws_after_ray_up(), "the autoscaler's config (x)")
    assert found.total("GPU") == 4 and found.total("CPU") == 16  # the head: CPU 0
    sizing = capacity.size(_spec(), found)
    # A unit is {CPU: 1, GPU: 1}: a g5.xlarge holds one (its only GPU), four workers hold four.
    assert (sizing.gpus_per_unit, sizing.concurrent) == (1.0, 4)
    assert (
        sizing.why
        == "the autoscaler's config (x): head {CPU: 0} + up to 4 × gpu_worker {CPU: 4, GPU: 1}, at most 4 workers"
    )


def test_the_flags_win_and_the_header_says_which():
    found = capacity.from_autoscaler_config(_aws_after_ray_up(), "src")
    both = capacity.size(_spec(gpus_per_trial=0.0, max_concurrent=3), found)
    assert (both.gpus_per_unit, both.concurrent, both.why) == (0.0, 3, "--gpus-per-trial and --max-concurrent as given")
    one = capacity.size(_spec(gpus_per_trial=0.5), found)
    # Two half-GPU units per g5.xlarge (its 4 CPUs allow four): 8 at once.
    assert (one.gpus_per_unit, one.concurrent) == (0.5, 8)
    assert one.why.startswith("--gpus-per-trial as given; src: ")


def test_parallel_units_take_several_bundles_per_trial():
    found = capacity.from_autoscaler_config(_aws_after_ray_up(), "src")
    assert capacity.size(_spec(parallel_units=2), found).concurrent == 2


def test_a_global_max_workers_caps_the_types_best_first():
    config = {
        "max_workers": 3,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 2}},
            "big": {"resources": {"CPU": 8, "GPU": 2}, "max_workers": 2},
            "small": {"resources": {"CPU": 2, "GPU": 1}, "max_workers": 5},
        },
    }
    found = capacity.from_autoscaler_config(config, "src")
    # Three workers at most: both "big" (2 GPUs each) and one "small" (1): 5 GPUs.
    assert found.total("GPU") == 5
    # {CPU: 2, GPU: 1} units: big holds 2 each, small 1, the head none (no GPU): 2 + 2 + 1.
    assert found.fits({"CPU": 2, "GPU": 1}) == 5
    # CPU-only units of 2 CPUs: the head 1, big 4 each, small 1: 1 + 4 + 4 + 1.
    assert found.fits({"CPU": 2, "GPU": 0}) == 10


def test_a_node_type_without_its_own_max_takes_the_global_one():
    config = {"max_workers": 2, "available_node_types": {"w": {"resources": {"CPU": 1}}}}
    assert capacity.from_autoscaler_config(config, "src").fits({"CPU": 1}) == 2


def test_rays_reported_cluster_config_with_an_unbounded_group_and_a_cluster_cap():
    from ray.core.generated import autoscaler_pb2

    config = autoscaler_pb2.ClusterConfig()
    group = config.node_group_configs.add()
    group.name, group.max_count = "gpu", -1
    group.resources["CPU"], group.resources["GPU"] = 4, 1
    unbounded = capacity.from_cluster_config(config)
    assert capacity.size(_spec(), unbounded).concurrent == capacity.MAX_TRIALS_AT_ONCE
    assert "any number of gpu {CPU: 4, GPU: 1}" in unbounded.describe()
    config.max_resources["GPU"] = 3  # at most 3 GPUs in the whole cluster
    capped = capacity.from_cluster_config(config)
    assert capped.total("GPU") == 3 and capacity.size(_spec(), capped).concurrent == 3
    assert capacity.from_cluster_config(autoscaler_pb2.ClusterConfig()) is None, "nothing reported"


def test_without_an_autoscaler_the_nodes_up_now_decide():
    nodes = [
        {"Alive": True, "NodeID": "a" * 56, "Resources": {"CPU": 2.0}},
        {"Alive": True, "NodeID": "b" * 56, "Resources": {"CPU": 2.0}},
        {"Alive": False, "NodeID": "c" * 56, "Resources": {"CPU": 64.0, "GPU": 8.0}},
    ]
    now = capacity.from_nodes(nodes)
    sizing = capacity.size(_spec(), now)
    assert (sizing.gpus_per_unit, sizing.concurrent) == (0.0, 4)
    assert sizing.why == "the cluster now (2 nodes, no autoscaler seen): 2 × node {CPU: 2}"
    # A unit bigger than every node still gets one trial (it waits; Tune says why).
    assert capacity.size(_spec(cpus_per_trial=4.0), now).concurrent == 1


@pytest.mark.usefixtures("ray_session")
def test_the_test_sessions_local_instance_has_no_autoscaler():
    found = capacity.discover()
    assert not found.autoscaling and found.source.startswith("the cluster now (1 node")
    assert capacity._reported() is None, "Ray 2.60 reports no cluster config for a local instance"
    # Its one fake GPU: a GPU per trial by default, and one such trial at a time.
    sizing = capacity.size(_spec(), found)
    assert (sizing.gpus_per_unit, sizing.concurrent) == (1.0, 1)


def test_an_autoscaler_config_without_declared_resources_is_not_trusted():
    """cluster-onprem.yaml as Ray prepares it: one node type whose resources Ray detects on the machines."""
    from ray.autoscaler._private.util import prepare_config

    config = prepare_config(yaml.safe_load((ROOT / "cluster-onprem.yaml").read_text()))
    found = capacity.from_autoscaler_config(config, "src")
    assert not found.known(), "the on-prem type's `resources: {}` says nothing about CPUs or GPUs"
    assert capacity.from_autoscaler_config(_aws_after_ray_up(), "src").known()
