"""The benchmarks' command lines (not their timings): bench/gpu_check.py without CUDA, --help."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT))
from bench import gpu_check  # noqa: E402


def _run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **env},
    )


def test_gpu_check_without_cuda_exits_2_with_one_line():
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this holds on a CUDA machine too.
    out = _run("gpu_check.py", CUDA_VISIBLE_DEVICES="")
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error:") and "no CUDA device" in lines[0]


@pytest.mark.parametrize("script, flag", [("gpu_check.py", "--steps"), ("finetune_step.py", "--steps"),
                                          ("scaling.py", "--rounds"), ("probabilistic.py", "--rounds")])  # fmt: skip
def test_bench_help(script, flag):
    out = _run(script, "--help")
    assert out.returncode == 0, out.stderr
    assert flag in out.stdout


def test_gpu_check_flags():
    assert gpu_check.packings_arg("1,2,4") == [1, 2, 4]
    for bad in ("0,1", "a", ""):
        with pytest.raises(Exception, match="trials per GPU"):
            gpu_check.packings_arg(bad)
    help_text = _run("gpu_check.py", "--help").stdout
    assert "--models" in help_text and "--packings" in help_text


def test_mean_utilisation_over_the_overlap():
    samples = [(t, 10.0 * t, 0.0) for t in range(10)]  # utilisation 0, 10, ..., 90 at t = 0..9
    assert gpu_check.mean_utilisation(samples, [(2, 6), (4, 8)]) == 50.0  # t = 4, 5, 6
    assert gpu_check.mean_utilisation(samples, [(1, 2), (7, 8)]) == 45.0  # no overlap: t = 1..8
    assert gpu_check.mean_utilisation([], [(0, 1)]) is None
