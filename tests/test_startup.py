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
