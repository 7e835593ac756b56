"""A real two-node Ray cluster on this machine (token authentication on, as `ray start` sets it)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY_FOLDS, TINY_TFT, free_port, ray_node

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_nodes():
    """(address, env with the token) of a head node and a worker node, 1 CPU each."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    port = free_port()
    head = ray_node("--head", f"--port={port}", "--num-cpus=1", "--num-gpus=0", "--include-dashboard=false", env=env)
    address = f"127.0.0.1:{port}"
    time.sleep(6)
    worker = ray_node(f"--address={address}", "--num-cpus=1", "--num-gpus=0", '--resources={"worker_node": 1}', env=env)
    _wait_for_nodes(address, env, 2)
    yield address, env, worker
    for proc in (worker, head):
        if proc.poll() is None:  # the node-loss test has crashed the worker already
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


def _sweep_args(tmp_path, address: str, name: str, *extra: str, training: dict = TINY_TFT) -> list[str]:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"training_config": training}))
    return [sys.executable, str(ROOT / "sweeps" / "tft.py"), "--config", str(config), "--mode", "quick",
            "--max-runs", "2", "--folds", "1", "--seeds", "2", "--storage", str(tmp_path / "r"), "--name", name,
            "--address", address, "--gpus-per-trial", "0", *TINY_FOLDS, *extra]  # fmt: skip


def _sweep(tmp_path, address: str, env: dict, name: str, *extra: str) -> subprocess.CompletedProcess:
    args = _sweep_args(tmp_path, address, name, *extra)
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)


def _records(sweep) -> list[dict]:
    return [json.loads(open(p).read()) | {"trial": p.split("/")[-4]}
            for p in glob.glob(str(sweep / "trial_*" / "units" / "*" / "record.json"))]  # fmt: skip


def _node_with(address: str, env: dict, resource: str) -> str:
    code = (f"import ray; ray.init(address={address!r}); "
            f"print([n['NodeID'] for n in ray.nodes() if n['Alive'] and {resource!r} in n['Resources']][0])")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()


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


def _crash(pid: int) -> None:
    """SIGKILL a node's whole process tree at once, as a machine that loses power.

    (SIGTERM to `ray start --block` lets the node's workers finish their current task first.)
    """
    import psutil

    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        proc.kill()
    root.wait(timeout=30)


# Runs last in this module: it takes the worker node down.
def test_trials_of_a_lost_worker_node_are_rescheduled_on_the_other(two_nodes, tmp_path):
    address, env, worker = two_nodes
    worker_id = _node_with(address, env, "worker_node")
    assert worker_id
    # 2 configurations × 4 folds × 1 seed, one trial per node; longer units so the worker dies mid-trial.
    slower = {**TINY_TFT, "max_epochs": 8, "early_stopping_patience": 100}
    args = _sweep_args(tmp_path, address, "lost", "--folds", "4", "--seeds", "1", "--max-failures", "2",
                       training=slower)  # fmt: skip
    sweep = tmp_path / "r" / "lost"
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not any(r["node_id"] == worker_id for r in _records(sweep)):
        assert proc.poll() is None and time.time() < deadline, "no unit finished on the worker node"
        time.sleep(0.2)
    on_worker = {r["trial"] for r in _records(sweep) if r["node_id"] == worker_id}
    _crash(worker.pid)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    records = _records(sweep)
    units = sorted((r["trial"], r["fold"], r["seed"]) for r in records)
    assert len(units) == 8 and len(set(units)) == 8, "every unit done exactly once"
    moved = [r for r in records if r["trial"] in on_worker and r["node_id"] != worker_id]
    assert moved, "the worker's trial finished its remaining folds on the head node"
    assert all(r["node_id"] != worker_id for r in records if r["trial"] in on_worker and r["fold"] == "wf_4")
