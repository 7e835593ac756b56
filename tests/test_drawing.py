"""analysis.drawing: plots drawn by worker processes land on disk; errors and unsafe mains."""

from __future__ import annotations

import os
import sys
import types

import pandas as pd
import pytest

from analysis import drawing, plots


def _ranked(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["tft"] * n,
            "config_id": [f"c{i}" for i in range(n)],
            "rank": range(1, n + 1),
            "config/learning_rate": [10.0**-i for i in range(n)],
            "val_pct_mae": [1.0 + i for i in range(n)],
            "val_pct_mae_std": [0.1] * n,
            "val_naive_pct_mae": [1.5] * n,
            "status": ["ok"] * n,
            "complete": [True] * n,
            "units_compared": [2] * n,
        }
    )


def test_workers_draw_every_plot(tmp_path):
    paths = [str(tmp_path / f"ranking_{i}.png") for i in range(4)]
    assert drawing._context() is not None, "pytest runs as `python -m pytest`: workers are allowed"
    with drawing.Drawer(parallel=True) as drawer:
        assert drawer._pool is not None
        for i, path in enumerate(paths):
            drawer.submit(plots.ranking_plot, _ranked(i + 2), "val_pct_mae", path)
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _fail(path: str) -> None:
    raise ValueError(f"cannot draw {path}")


def test_a_failing_plot_is_raised_here(tmp_path):
    with pytest.raises(ValueError, match="cannot draw"):
        with drawing.Drawer(parallel=True) as drawer:
            drawer.submit(_fail, str(tmp_path / "x.png"))


def test_unguarded_user_script_draws_in_this_process(monkeypatch, tmp_path):
    script = tmp_path / "my_analysis.py"
    script.write_text("print('would run again in every worker')\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake)
    assert drawing._context() is None
    path = str(tmp_path / "ranking.png")
    with drawing.Drawer(parallel=True) as drawer:
        assert drawer._pool is None
        drawer.submit(plots.ranking_plot, _ranked(3), "val_pct_mae", path)
        assert os.path.isfile(path), "drawn at once, in this process"
