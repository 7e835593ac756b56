"""The cluster files validate against Ray's own schema and carry no secrets."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FILES = ["cluster.yaml", "cluster-onprem.yaml"]


@pytest.mark.parametrize("name", FILES)
def test_cluster_file_passes_rays_validation(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((ROOT / name).read_text()))
    validate_config(config)  # raises on any schema violation
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    starts = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert starts.count("RAY_AUTH_MODE=token") == 2
    assert "--dashboard-host=127.0.0.1" in starts


def test_aws_cluster_has_cpu_head_and_autoscaling_gpu_workers():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    workers = config["available_node_types"]["gpu_worker"]
    assert workers["min_workers"] == 0 and workers["max_workers"] >= 1
    assert workers["node_config"]["InstanceType"].startswith(("g", "p"))
    assert any("pip install -e" in c for c in config["setup_commands"])


@pytest.mark.parametrize("name", FILES)
def test_no_credentials_in_cluster_files(name):
    text = (ROOT / name).read_text()
    assert not re.search(r"(?i)aws_(secret_)?access_key|AKIA[0-9A-Z]{12,}|secret_key\s*:", text)
