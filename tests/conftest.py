"""Shared fixtures: one Ray instance per test session, tiny sweep settings, synthetic prices."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainables import registry

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")

# The TINY configurations live in each model's search-space module (the registry's one list).
TINY_TFT = registry.get("tft").spaces().TINY

# Small rolling folds at the end of the embedded S&P 500 series.
TINY_FOLDS = ["--window", "rolling", "--train-size", "200", "--val-size", "20", "--test-size", "20"]


@pytest.fixture(scope="session")
def ray_session():
    """The test session's one local Ray instance (2 CPUs, 1 fake GPU, small object store)."""
    import ray

    ray.init(
        address="local",  # a new instance, whatever other Ray clusters run on this machine
        num_cpus=2,
        num_gpus=1,
        object_store_memory=300 * 1024**2,
        include_dashboard=False,
        # tests/ too: a model registered from test code (tests/fifth_model.py) is imported by workers
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}},
    )
    yield ray
    ray.shutdown()


@pytest.fixture()
def tiny_config(tmp_path) -> str:
    """A sweep JSON file with a tiny TFT training_config."""
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"training_config": TINY_TFT}))
    return str(path)


def sweep_args(storage, config: str, *extra: str) -> list[str]:
    """CLI arguments of a tiny, CPU-only sweep into `storage`."""
    return ["--config", config, "--storage", str(storage), "--gpus-per-trial", "0", *TINY_FOLDS, *extra]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_node(*args: str, env: dict, log=subprocess.DEVNULL) -> subprocess.Popen:
    """`ray start --block ...` as a child of the test (a node of a cluster of its own)."""
    # --block keeps each node's processes under one parent that stops them on SIGTERM, so the
    # test never touches the test session's own Ray instance (`ray stop` would).
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    return subprocess.Popen([ray_bin, "start", "--block", "--disable-usage-stats", *args], env=env,
                            stdout=log, stderr=subprocess.STDOUT if log is not subprocess.DEVNULL else log)  # fmt: skip


def synthetic_prices(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A geometric random walk with OHLCV columns on business days."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {
            "timestamp": pd.bdate_range("2015-01-01", periods=n),
            "open": close * (1 + rng.normal(0, 0.002, n)),
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.integers(1_000, 10_000, n).astype(float),
        }
    )


def run_cli(*args: str, timeout: int = 300):
    """Run `python sweeps/tft.py ARGS` in a subprocess; returns the CompletedProcess."""
    import subprocess

    return subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "tft.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@contextmanager
def moto_s3(bucket: str):
    """A moto S3 server on loopback with `bucket` created: yields (the AWS variables that point at it, a client)."""
    import socket
    import subprocess
    import time

    import boto3

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing-key",
           "AWS_SECRET_ACCESS_KEY": "testing-secret-value", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="k", aws_secret_access_key="s")  # fmt: skip
    try:
        for _ in range(100):
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:  # the server is still starting
                time.sleep(0.1)
        yield env, client
    finally:
        server.terminate()
        server.wait()
