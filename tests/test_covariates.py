"""Covariates: declarations, sets, alignment on the target's calendar, the door, the search axis,
and the leakage contract of Chronos-2 and the TFT (Toto's: tests/test_toto_covariates.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_TFT, synthetic_prices

from search_spaces import strategies
from search_spaces.chronos2 import TINY as TINY_CHRONOS2
from sweeps.cli import main
from trainables import covariates as cov
from trainables.adapter import UnitData, Window

torch.set_num_threads(1)


# ------------------------------------------------------------------------------ declarations


def test_declarations_parse_with_their_default_names_and_kinds():
    vix, volume, event = cov.parse("asset:VIX,volume,ev=event:known")
    assert (vix.name, vix.asset, vix.known, vix.frame_column) == ("vix", "VIX", False, "cov_vix")
    assert (volume.name, volume.column, volume.known) == ("volume", "volume", False)
    assert (event.name, event.column, event.known) == ("ev", "event", True)
    # Written out in full, a declaration parses back to itself (what sweep.json stores).
    assert cov.parse([c.text for c in (vix, volume, event)]) == (vix, volume, event)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("asset:VIX:known", "not known ahead"),
        ("asset:", "needs an asset name"),
        ("a b", "letters, digits or _"),
        ("none=volume", "'none'"),
        ("volume,volume", "twice"),
        ("x=", "name a column"),
    ],
)
def test_a_bad_declaration_is_refused_naming_it(text, says):
    with pytest.raises(cov.CovariateError, match=says):
        cov.parse(text)


def test_a_set_names_declared_covariates_and_gives_their_columns_in_declaration_order():
    declared = cov.parse("vix=asset:VIX,volume,ev=event:known")
    assert cov.members("none", declared) == ()
    assert cov.everything(declared) == "vix+volume+ev"
    assert cov.columns({"covariates": "ev+vix"}, declared) == (("cov_vix",), ("cov_ev",))
    assert cov.columns({}, declared) == (("cov_vix", "cov_volume"), ("cov_ev",))  # default: all of them
    assert cov.columns({"covariates": "vix"}, ()) == ((), ())  # nothing declared: nothing read
    with pytest.raises(cov.CovariateError, match="'vxx' is not a declared covariate"):
        cov.members("vix+vxx", declared)
    with pytest.raises(cov.CovariateError, match="twice"):
        cov.members("vix+vix", declared)


# --------------------------------------------------------------------------------- alignment


def _days(*days: int) -> pd.Series:
    return pd.Series(pd.to_datetime([f"2020-01-{d:02d}" for d in days]))


def test_another_assets_close_is_carried_forward_from_the_past_only_and_rows_before_it_are_left_out():
    target = pd.DataFrame({"timestamp": _days(1, 2, 3, 6, 7, 8), "close": [10.0, 11, 12, 13, 14, 15]})
    other = pd.DataFrame({"timestamp": _days(2, 5, 8, 9), "close": [1.0, 2.0, 3.0, 4.0]})
    out = cov.attach(target, cov.parse("asset:X"), lambda _asset: other)
    # Jan 1 has no value yet: left out. Jan 3 takes Jan 2's; Jan 6 and 7 take Jan 5's (a weekend
    # gap); Jan 8 its own. The value of Jan 9 (later than every row) is never read.
    assert out["timestamp"].tolist() == _days(2, 3, 6, 7, 8).tolist()
    assert out["cov_x"].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0]
    assert out["close"].tolist() == [11.0, 12, 13, 14, 15]


def test_a_column_gap_takes_the_last_earlier_value_never_a_later_one():
    frame = pd.DataFrame({"timestamp": _days(1, 2, 3, 4), "close": [1.0, 2, 3, 4], "flow": [np.nan, 5.0, np.nan, 7.0]})
    out = cov.attach(frame, cov.parse("flow"), lambda _a: None)
    assert out["cov_flow"].tolist() == [5.0, 5.0, 7.0] and out["close"].tolist() == [2.0, 3, 4]


def test_a_covariate_at_a_row_never_depends_on_values_after_that_row():
    target = synthetic_prices(60)
    other = synthetic_prices(80, seed=3)
    base = cov.attach(target, cov.parse("asset:X"), lambda _a: other)
    later = other.copy()
    cut = target["timestamp"].iloc[30]
    later.loc[later["timestamp"] > cut, "close"] *= 10
    moved = cov.attach(target, cov.parse("asset:X"), lambda _a: later)
    upto = base["timestamp"] <= cut
    assert np.array_equal(base.loc[upto, "cov_x"], moved.loc[upto, "cov_x"])
    assert not np.array_equal(base["cov_x"], moved["cov_x"])


def test_alignment_errors_name_the_covariate_and_the_way_out():
    target = pd.DataFrame({"timestamp": _days(1, 2), "close": [1.0, 2.0], "volume": [0.0, 0.0]})
    aware = pd.DataFrame({"timestamp": _days(1, 2).dt.tz_localize("UTC"), "close": [1.0, 2.0]})
    with pytest.raises(cov.CovariateError, match="'x'.*time zones"):
        cov.attach(target, cov.parse("asset:X"), lambda _a: aware)
    with pytest.raises(cov.CovariateError, match="no volume column"):
        cov.attach(target, cov.parse("volume"), lambda _a: None, made_up=("volume",))
    with pytest.raises(cov.CovariateError, match="column 'flow' is not in"):
        cov.attach(target, cov.parse("flow"), lambda _a: None)


# ---------------------------------------------------------------------------- the search axis


def test_the_covariate_set_is_an_axis_of_every_mode():
    from search_spaces import chronos2 as space

    base = {**space.BASELINE, "covariates": "vix"}
    ranges = {"covariates": ["none", "vix"]}
    quick = strategies.configurations("quick", space, base, ranges, None)
    assert len(quick) == 2 * len(strategies.configurations("quick", space, base, {}, None))
    assert {c["covariates"] for c in quick} == {"none", "vix"}
    ofat = strategies.configurations("ofat", space, base, ranges, None)
    assert [c["covariates"] for c in ofat] == ["vix", "none"]  # the baseline, then the set moved alone
    search = strategies.build("optuna", space, base, ranges=ranges, num_samples=2)
    assert set(search.param_space["covariates"].categories) == {"none", "vix"}


# ------------------------------------------------------------------------------------ the door


@pytest.mark.parametrize(
    ("model", "flags", "says"),
    [
        ("kronos", ["--covariates", "asset:VIX"], "kronos takes no covariates: its tokenizer reads fixed K-line"),
        ("baselines", ["--covariates", "asset:VIX"], "baselines takes no covariates"),
        ("chronos2", ["--covariates", "asset:VIX:known"], "not known ahead"),
        ("chronos2", ["--covariates", "flow"], "column 'flow' needs --data"),
        ("chronos2", ["--covariates", "asset:GOLD"], "asset:GOLD: not in the embedded data"),
    ],
)
def test_bad_covariates_stop_at_the_door_with_one_line(model, flags, says, tmp_path, capsys):
    storage = tmp_path / "results"
    assert main(model, ["--storage", str(storage), "--seeds", "1", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and err.count("\n") == 0
    assert not storage.exists()  # nothing written


def test_a_set_of_undeclared_covariates_is_refused_naming_the_field(tmp_path, capsys):
    import json

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"param_ranges": {"covariates": ["none", "vix"]}}))
    assert main("chronos2", ["--config", str(config), "--storage", str(tmp_path / "r")]) == 2
    assert "param_ranges.covariates needs declared covariates: add --covariates" in capsys.readouterr().err
    config.write_text(json.dumps({"covariates": ["asset:VIX"], "param_ranges": {"covariates": ["none", "vxx"]}}))
    assert main("chronos2", ["--config", str(config), "--storage", str(tmp_path / "r")]) == 2
    assert "param_ranges.covariates 'vxx': 'vxx' is not a declared covariate (vix)" in capsys.readouterr().err


# ------------------------------------------------------------------------- leakage, per model

N = 400
ORIGINS = np.array([310, 325, 340])


def _frame() -> pd.DataFrame:
    frame = synthetic_prices(N)
    rng = np.random.default_rng(5)
    frame["cov_past"] = 20 + np.cumsum(rng.normal(0, 1, N))
    frame["cov_known"] = np.sin(np.arange(N) / 3.0)
    return frame


def _data(frame: pd.DataFrame) -> UnitData:
    return UnitData(frame, (), Window(0, 300), Window(300, 360), Window(360, N),
                    past_covariates=("cov_past",), known_covariates=("cov_known",))  # fmt: skip


def _changed(frame: pd.DataFrame, column: str, rows: slice | int) -> pd.DataFrame:
    out = frame.copy()
    out.loc[rows, column] = out.loc[rows, column] * 3 + 7
    return out


def _leakage(adapter, horizon: int) -> None:
    """Per origin: a past covariate read before it only, a known one up to origin + horizon − 1."""
    frame = _frame()
    for origin in ORIGINS:
        at = np.array([origin])
        base = adapter.forecast(_data(frame), at)
        for column, first_unread, read in (("cov_past", origin, origin - 1), ("cov_known", origin + horizon, origin)):
            after = adapter.forecast(_data(_changed(frame, column, slice(first_unread, None))), at)
            np.testing.assert_array_equal(after.point, base.point, err_msg=f"{column} read at/after row {first_unread}")
            np.testing.assert_array_equal(after.quantiles, base.quantiles)
            moved = adapter.forecast(_data(_changed(frame, column, read)), at)
            assert not np.allclose(moved.quantiles, base.quantiles), f"{column} at row {read} is not read"


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_chronos2_reads_covariates_within_the_contract_after_fine_tuning(mode, tmp_path):
    from trainables.chronos2 import Chronos2Adapter, build_pipeline

    torch.manual_seed(0)
    build_pipeline({"init": "scratch", "size": "tiny"}).save_pretrained(tmp_path / "tiny")
    config = {**TINY_CHRONOS2, "init": "pretrained", "pretrained": str(tmp_path / "tiny"), "prediction_length": 3}
    adapter = Chronos2Adapter({**config, "finetune_mode": mode, "learning_rate": 1e-3}, seed=7)
    facts = adapter.fit(_data(_frame()), None)
    assert facts["checkpoint_chosen_on"] == "val" and np.isfinite(facts["best_eval_loss"])
    _leakage(adapter, 3)
    # Saved and loaded back, it forecasts the same from the same covariates.
    adapter.save(str(tmp_path / "unit"))
    again = Chronos2Adapter.load(str(tmp_path / "unit"))
    np.testing.assert_allclose(again.forecast(_data(_frame()), ORIGINS).quantiles,
                               adapter.forecast(_data(_frame()), ORIGINS).quantiles, rtol=1e-5)  # fmt: skip


def test_chronos2_global_fit_takes_every_assets_covariates():
    from trainables.chronos2 import Chronos2Adapter

    adapter = Chronos2Adapter({**TINY_CHRONOS2, "prediction_length": 2}, seed=7)
    a, b = _frame(), _frame().assign(close=lambda f: f["close"] * 2)
    facts = adapter.fit_many({"A": _data(a), "B": _data(b)}, None)
    assert facts["checkpoint_chosen_on"] == "val"
    _leakage(adapter, 2)


def test_tft_takes_past_covariates_as_unknown_and_known_ones_as_known_reals():
    from trainables.tft import TFTAdapter

    adapter = TFTAdapter({**TINY_TFT, "max_prediction_length": 2}, seed=7)
    adapter.fit(_data(_frame()), None)
    params = adapter._params
    assert "cov_past" in params["time_varying_unknown_reals"]
    assert "cov_known" in params["time_varying_known_reals"]
    _leakage(adapter, 2)
