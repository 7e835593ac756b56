"""Sweeps on S3-compatible storage (moto's server on 127.0.0.1): write, kill, resume, read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY_FOLDS, TINY_TFT, moto_s3

pytestmark = pytest.mark.slow
BUCKET = "sweeps"


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on loopback: (the environment that points at it, a client)."""
    with moto_s3(BUCKET) as (aws, client):
        yield {**os.environ, **aws}, client


def _keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _read(client, key: str) -> str:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode(errors="replace")


def test_sweep_on_s3_survives_a_kill_and_resumes_from_s3(s3_env, tmp_path):
    env, client = s3_env
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"training_config": TINY_TFT}))
    storage = f"s3://{BUCKET}/res"
    args = ["--config", str(config), "--mode", "priority", "--max-runs", "1", "--folds", "3", "--seeds", "1",
            "--storage", storage, "--name", "s3sweep", "--gpus-per-trial", "0", *TINY_FOLDS]  # fmt: skip
    script = str(ROOT / "sweeps" / "tft.py")
    proc = subprocess.Popen([sys.executable, script, *args], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    while not [k for k in _keys(client, "res/s3sweep/") if k.endswith("record.json")]:
        assert proc.poll() is None and time.time() < deadline, "no unit finished on S3"
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run([sys.executable, script, "--resume", "--name", "s3sweep", "--storage", storage],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    keys = _keys(client, "res/s3sweep/")
    records = sorted(k.split("/")[-2] for k in keys if k.endswith("record.json"))
    assert records == ["wf_1__seed7", "wf_2__seed7", "wf_3__seed7"]
    assert any(k.endswith("model/tft.ckpt") for k in keys)
    checkpoints = {p[3] for p in (k.split("/") for k in keys) if len(p) > 4 and p[3].startswith("checkpoint_")}
    assert 1 <= len(checkpoints) <= 2, checkpoints  # CheckpointConfig(num_to_keep=2), on S3 too
    assert any("/tensorboard/" in k for k in keys), "per-unit curves synced to S3"
    ranking = _read(client, "res/s3sweep/config_ranking.csv")
    assert ranking.splitlines()[1].split(",")[0] == "1"
    # The analysis reads the sweep straight from S3: the same winner as the stored ranking.
    best = subprocess.run([sys.executable, str(ROOT / "analysis" / "best.py"), "--results", storage, "--metric",
                           "val_pct_mae", "--export-path", str(tmp_path / "best.json")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert best.returncode == 0, best.stderr[-2000:]
    winner = ranking.splitlines()[1].split(",")[2]
    assert f"configuration {winner}" in best.stdout and "s3://" in best.stdout, best.stdout
    exported = json.loads((tmp_path / "best.json").read_text())
    assert exported["config_id"] == winner and exported["checkpoint"].startswith(f"{storage}/s3sweep/trial_")
    # Metrics recomputed from the stored forecasts, on S3: an old record keeps its values under metrics_v1.
    record_key = sorted(k for k in keys if k.endswith("record.json"))[0]
    old = json.loads(_read(client, record_key))
    old["metrics"].pop("val_rel_mae")
    old.pop("metrics_version")
    client.put_object(Bucket=BUCKET, Key=record_key, Body=json.dumps(old).encode())
    redo = subprocess.run([sys.executable, str(ROOT / "analysis" / "report.py"), f"{storage}/s3sweep",
                           "--recompute-metrics", "--no-plots"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert redo.returncode == 0 and "metrics recomputed for 3 of 3 complete units" in redo.stdout, redo.stderr[-2000:]
    again = json.loads(_read(client, record_key))
    assert again["metrics_v1"] == old["metrics"] and "val_rel_mae" in again["metrics"]
    assert json.loads(_read(client, "res/s3sweep/summary.json"))["spa_pvalue"]["test"] is not None
    # No credential ends up in the results.
    for key in keys:
        if key.endswith((".json", ".csv")):
            assert "testing-secret-value" not in _read(client, key) and "testing-key" not in _read(client, key)
