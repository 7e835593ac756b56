"""The contract tests of every registered forecaster (tests/contract.py: one subclass per model)
and the sweep-level checks that are not per model.

A model added to `registry.MODELS` adds one subclass here; a model registered from test code
alone subclasses the kit in its own test file (tests/test_fifth_model.py).
"""

from __future__ import annotations

import glob
import json
import os

import pytest
from conftest import TINY_FOLDS
from contract import AdapterContract, subclasses

from sweeps.cli import main
from trainables import registry

pytestmark = pytest.mark.slow


class TestTFTContract(AdapterContract):
    model = "tft"


class TestTotoContract(AdapterContract):
    model = "toto"


class TestChronos2Contract(AdapterContract):
    model = "chronos2"


class TestKronosContract(AdapterContract):
    model = "kronos"


class TestBaselinesContract(AdapterContract):
    model = "baselines"


def test_every_registered_model_has_exactly_one_contract_subclass_that_pytest_collects():
    kits = subclasses()
    for cls in kits:  # collected: a Test* class in a test_*.py module
        assert cls.__name__.startswith("Test") and cls.__module__.split(".")[-1].startswith("test_"), cls
    for model in registry.MODELS:
        named = [cls.__name__ for cls in kits if cls.model == model]
        assert len(named) == 1, f"{model!r} needs one subclass of contract.AdapterContract, has {named}"


@pytest.mark.usefixtures("ray_session")
def test_two_half_gpu_trials_share_one_gpu_at_the_same_time(tmp_path, tiny_config):
    """With one (fake) GPU, --gpus-per-trial 0.5 lets two trials run side by side."""
    args = [
        "--config",
        tiny_config,
        "--mode",
        "quick",
        "--max-runs",
        "2",
        "--folds",
        "2",
        "--seeds",
        "1",
        "--gpus-per-trial",
        "0.5",
        "--storage",
        str(tmp_path / "r"),
        "--name",
        "g",
        *TINY_FOLDS,
    ]
    assert main("tft", args) == 0
    spans = []
    for trial in glob.glob(str(tmp_path / "r" / "g" / "trial_*")):
        with open(os.path.join(trial, "result.json")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        end = rows[-1]["timestamp"]
        spans.append((end - rows[-1]["time_total_s"], end))
    (s1, e1), (s2, e2) = sorted(spans)
    assert s2 < e1, f"trials ran one after the other: {spans}"
