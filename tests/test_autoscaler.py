"""A sweep on an autoscaling cluster that starts with no GPU worker: Ray's real autoscaler (v2) with
its fake multi-node provider (worker nodes are Ray nodes started on this machine), head and nodes
started and stopped by this test by process id."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest
from conftest import ROOT, TINY_FOLDS, TINY_TFT, free_port, ray_node

pytestmark = pytest.mark.slow

HEAD_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"  # the fake provider's head id
MAX_GPU_WORKERS = 2
SMALL_STORE = 100 * 1024**2


def _config(port: int) -> dict:
    """cluster.yaml's shape on the fake provider: a head that takes no trial and a {CPU: 1, GPU: 1}
    worker type from 0 up to MAX_GPU_WORKERS."""
    commands = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands", "cluster_synced_files",
                "rsync_exclude", "rsync_filter")  # fmt: skip
    return {
        "cluster_name": "fake",
        "max_workers": MAX_GPU_WORKERS,
        "idle_timeout_minutes": 5,
        "upscaling_speed": 1.0,
        # type "external": the wheel lacks the defaults file type "fake_multinode" reads.
        "provider": {
            "type": "external",
            "module": "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider",
            "gcs_address": f"127.0.0.1:{port}",
            "head_node_id": HEAD_ID,
            "launch_multiple": True,
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "gpu_worker": {
                "resources": {"CPU": 1, "GPU": 1, "object_store_memory": SMALL_STORE},
                "node_config": {},
                "min_workers": 0,
                "max_workers": MAX_GPU_WORKERS,
            },
        },
        "head_node_type": "ray.head.default",
        "file_mounts": {},
        "file_mounts_sync_continuously": False,
        **{k: [] for k in commands},
    }


@pytest.fixture(scope="module")
def autoscaling_cluster(tmp_path_factory):
    """(address, dashboard address, env) of a head with CPU 0 and GPU 0 whose autoscaler may add GPU
    workers."""
    tmp = tmp_path_factory.mktemp("fake_cluster")
    port, dashboard = free_port(), free_port()
    config = tmp / "autoscaling.json"
    config.write_text(json.dumps(_config(port)))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT),
           "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_enable_autoscaler_v2": "1",
           "RAY_CLOUD_INSTANCE_ID": HEAD_ID, "RAY_OVERRIDE_NODE_ID_FOR_TESTING": HEAD_ID,
           # `python` in a job's entrypoint is this environment's, as on a node set up by cluster.yaml.
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}  # fmt: skip
    # Ports of their own for the head's agents: the test session's Ray holds the default ones, and
    # a job server whose agent could not bind says "No available agent to submit job".
    agents = [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
              f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
              f"--ray-client-server-port={free_port()}"]  # fmt: skip
    head = ray_node("--head", f"--port={port}", "--num-cpus=0", "--num-gpus=0", "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", *agents,
                    f"--object-store-memory={SMALL_STORE}", f"--autoscaling-config={config}",
                    env=env, log=open(tmp / "head.log", "w"))  # fmt: skip
    try:
        _wait_up(f"http://127.0.0.1:{dashboard}")
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}", env
    finally:
        _stop(head)


def _wait_up(dashboard: str) -> None:
    """Until the head's dashboard answers (it starts after the GCS)."""
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"{dashboard}/api/version", timeout=2):
                return
        except urllib.error.HTTPError:  # it answers (token authentication refuses a tokenless call)
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the head never came up")


def _stop(head: subprocess.Popen) -> None:
    """Stop the head and every node its autoscaler started (all descendants of `ray start`)."""
    procs = psutil.Process(head.pid).children(recursive=True)
    head.terminate()
    head.wait(timeout=60)
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def _records(sweep) -> list[dict]:
    return [json.loads(open(p).read()) | {"trial": p.split("/")[-4]}
            for p in glob.glob(str(sweep / "trial_*" / "units" / "*" / "record.json"))]  # fmt: skip


def test_a_cluster_with_no_gpu_worker_grows_to_its_max_and_trials_get_a_gpu_each(autoscaling_cluster, tmp_path):
    address, _, env = autoscaling_cluster
    config = tmp_path / "c.json"
    # Units long enough that both trials are still training when the second node comes up.
    config.write_text(json.dumps({"training_config": {**TINY_TFT, "max_epochs": 6, "early_stopping_patience": 100}}))
    args = [sys.executable, str(ROOT / "sweeps" / "tft.py"), "--config", str(config), "--mode", "quick",
            "--max-runs", str(MAX_GPU_WORKERS), "--folds", "2", "--seeds", "1", "--storage", str(tmp_path / "r"),
            "--name", "grow", "--address", address, *TINY_FOLDS]  # fmt: skip
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # The header: sized by the autoscaler's node types, not by the empty cluster of the start.
    assert f"1 CPU, 1 GPU per trial, {MAX_GPU_WORKERS} at once" in proc.stdout, proc.stdout[:1500]
    assert "sized by the autoscaler's config" in proc.stdout and "up to 2 × gpu_worker {CPU: 1, GPU: 1}" in proc.stdout

    records = _records(tmp_path / "r" / "grow")
    assert len(records) == MAX_GPU_WORKERS * 2, "every unit of both configurations finished"
    nodes = {r["node_id"] for r in records}
    assert len(nodes) == MAX_GPU_WORKERS and HEAD_ID not in nodes, "the cluster grew to its max; none on the head"
    assert all(len(r["gpu_ids"]) == 1 for r in records), "each unit ran with a GPU of its own"
    by_trial: dict[str, list[dict]] = {}
    for r in records:
        by_trial.setdefault(r["trial"], []).append(r)
    spans = [(min(r["started_at"] for r in rs), max(r["finished_at"] for r in rs)) for rs in by_trial.values()]
    assert len(spans) == 2 and max(s for s, _ in spans) < min(e for _, e in spans), "the two trials ran at once"


# After the test above: the nodes it grew are still up (idle_timeout_minutes 5).
def test_the_readmes_ray_job_submit_runs_a_sweep_sized_by_the_autoscaler(autoscaling_cluster, tmp_path):
    _, dashboard, env = autoscaling_cluster
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"training_config": TINY_TFT}))
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    # README "On a Ray cluster": the entrypoint runs on the head, whose autoscaler config it reads.
    # Without the README's `--working-dir .`: the fake nodes share this machine's /tmp/ray, and
    # each node's agent unpacks the job's package anew into the same folder, deleting the one the
    # driver runs in (separate machines have a folder each). The code is on the shared disk already.
    args = [ray_bin, "job", "submit", "--address", dashboard, "--",
            "python", str(ROOT / "sweeps" / "tft.py"), "--storage", str(tmp_path / "r"), "--mode", "quick",
            "--max-runs", "2", "--folds", "1", "--seeds", "1", "--name", "job", "--config", str(config),
            *TINY_FOLDS]  # fmt: skip
    for _ in range(30):  # the head's agent registers with the job server a little after the dashboard is up
        proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)
        if "No available agent to submit job" not in proc.stdout + proc.stderr:
            break
        time.sleep(2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "succeeded" in proc.stdout, proc.stdout[-2000:]
    assert f"1 CPU, 1 GPU per trial, {MAX_GPU_WORKERS} at once" in proc.stdout
    records = _records(tmp_path / "r" / "job")
    assert len(records) == 2 and all(len(r["gpu_ids"]) == 1 and r["node_id"] != HEAD_ID for r in records)
