"""What a sweep does before and after its trials, so that its fixed costs land where it would wait anyway."""

from __future__ import annotations

import subprocess
import sys

from sweeps import summary
from sweeps.provenance import ROOT


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_checking_a_sweeps_input_imports_no_tune():
    # Bad input is refused before Ray starts; Tune's ~1 s of imports then waits for ray.init.
    out = _python("import sys, sweeps.cli, sweeps.driver, sweeps.spec; print('ray.tune' in sys.modules)")
    assert out.strip() == "False"


def test_prepare_imports_what_the_report_needs_in_the_background():
    code = (
        "import sys\nfrom sweeps import summary\nsummary.prepare()\nsummary._prepared[0].join(120)\n"
        "print(all(m in sys.modules for m in summary.REPORT_IMPORTS))"
    )
    assert _python(code).strip() == "True"


def test_the_report_is_prepared_once_fewer_trials_remain_than_run_at_once(monkeypatch):
    calls = []
    monkeypatch.setattr(summary, "prepare", lambda: calls.append(1))
    cb = summary.PrepareReport(configs=5, concurrent=2)
    cb.setup()
    for _ in range(3):  # 2 left for 2 slots: a new trial may still take a freed core
        cb.on_trial_complete(0, [], None)
    assert calls == []
    cb.on_trial_error(0, [], None)  # 1 left: a core stays idle until the end
    assert calls == [1]


def test_a_sweep_smaller_than_its_slots_prepares_at_its_first_end(monkeypatch):
    calls = []
    monkeypatch.setattr(summary, "prepare", lambda: calls.append(1))
    cb = summary.PrepareReport(configs=2, concurrent=4)
    cb.on_trial_complete(0, [], None)
    assert calls == [1]


def test_a_tft_sweep_worker_imports_neither_transformers_nor_matplotlib():
    # torchmetrics would import both (~2-3 s of CPU per trial process); the unit still trains and
    # logs, and transformers stays visible to anything else in the process.
    code = """
import sys, tempfile
from lightning_utilities.core.imports import RequirementCache
check = RequirementCache._check_requirement
from search_spaces import tft
from trainables import registry
from trainables.adapter import UnitData
from trainables.data import load_prices
from trainables.features import add_features
from trainables.folds import generate, windows
from trainables.unit import run_unit
registry.get("tft").adapter().prepare_worker()  # as trainables.nested does in every sweep worker
frame, feats = add_features(load_prices(None, "SPX"), "BASELINE_FEATURES")
fold = generate(frame["timestamp"], 1, 126, 126)[0]
with tempfile.TemporaryDirectory() as out:
    record = run_unit(registry.get("tft").adapter(), {**tft.BASELINE, **tft.TINY},
                      UnitData(frame, feats, *windows(fold, frame["timestamp"])), 0, out, out)
print(record["metrics"]["val_pct_mae"] > 0, "lightning" in sys.modules, "transformers" in sys.modules,
      "matplotlib" in sys.modules, RequirementCache._check_requirement is check, bool(RequirementCache("transformers")))
"""
    assert _python(code).split() == ["True", "True", "False", "False", "True", "True"]


def test_a_users_own_process_keeps_torchmetrics_whole():
    # Loading a best TFT in a notebook must not take torchmetrics' plots away: only workers go lean.
    code = "import trainables.tft, torchmetrics.utilities.imports as i; print(bool(i._MATPLOTLIB_AVAILABLE))"
    assert _python(code).strip() == "True"
