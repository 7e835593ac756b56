"""A real two-node Ray cluster on this machine (token authentication on, as `ray start` sets it)."""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY_FOLDS, TINY_TFT

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, env: dict) -> subprocess.Popen:
    # --block keeps each node's processes under one parent that stops them on SIGTERM, so the
    # test never touches the test session's own Ray instance (`ray stop` would).
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    return subprocess.Popen([ray_bin, "start", "--block", "--disable-usage-stats", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture(scope="module")
def two_nodes():
    """(address, env with the token) of a head node and a worker node, 1 CPU each."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    port = _free_port()
    head = _ray("--head", f"--port={port}", "--num-cpus=1", "--num-gpus=0", "--include-dashboard=false", env=env)
    address = f"127.0.0.1:{port}"
    time.sleep(6)
    worker = _ray(f"--address={address}", "--num-cpus=1", "--num-gpus=0", '--resources={"worker_node": 1}', env=env)
    _wait_for_nodes(address, env, 2)
    yield address, env, worker
    for proc in (worker, head):
        proc.terminate()
        proc.wait(timeout=60)


def _wait_for_nodes(address: str, env: dict, n: int) -> None:
    code = f"import ray; ray.init(address={address!r}); print(len([x for x in ray.nodes() if x['Alive']]))"
    for _ in range(60):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if out.stdout.strip() == str(n):
            return
        time.sleep(1)
    raise AssertionError(f"{n} nodes never came up")


def _sweep(tmp_path, address: str, env: dict, name: str, *extra: str) -> subprocess.CompletedProcess:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"training_config": TINY_TFT}))
    args = ["--config", str(config), "--mode", "quick", "--max-runs", "2", "--folds", "1", "--seeds", "2",
            "--storage", str(tmp_path / "r"), "--name", name, "--address", address, "--gpus-per-trial", "0",
            *TINY_FOLDS, *extra]  # fmt: skip
    return subprocess.run([sys.executable, str(ROOT / "sweeps" / "tft.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=400)  # fmt: skip


def test_driver_without_the_token_is_refused(two_nodes, tmp_path):
    address, env, _ = two_nodes
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    no_token["RAY_AUTH_TOKEN_PATH"] = str(tmp_path / "no_token_here")
    proc = _sweep(tmp_path, address, no_token, "refused")
    assert proc.returncode == 2
    assert "cannot connect to Ray" in proc.stderr and "Authentication" in proc.stderr, proc.stderr[-1500:]
    assert not (tmp_path / "r" / "refused" / "trial_00000").exists()


def test_trials_run_on_both_nodes(two_nodes, tmp_path):
    address, env, _ = two_nodes
    proc = _sweep(tmp_path, address, env, "both")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = glob.glob(str(tmp_path / "r" / "both" / "trial_*" / "units" / "*" / "record.json"))
    assert len(records) == 4
    nodes = {json.loads(open(p).read())["node_id"] for p in records}
    assert len(nodes) == 2, "the two trials ran on the two nodes"
