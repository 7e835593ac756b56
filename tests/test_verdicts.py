"""SPA, MCS and pooled DM verdicts on synthetic losses with a known answer (no Ray, no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import verdicts as v
from trainables.metrics import dm_test

N = 300


def _losses(factors: list[float], seed: int = 0, garch: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-origin losses of configurations c0, c1, … whose expected loss is factor × naive's; the
    quantile losses the same against the probabilistic random walk, GARCH's `garch` × the walk's."""
    rng = np.random.default_rng(seed)
    naive = np.abs(rng.standard_t(5, N)) + 1
    rows = []
    for k, factor in enumerate(factors):
        loss = naive * factor + rng.normal(0, 0.3, N)
        for split in ("val", "test"):
            half = N // 2  # two folds, concatenated in time
            for t in range(N):
                fold = "f1" if t < half else "f2"
                end = "2020" if t < half else "2021"
                rows.append(
                    {"model": "m", "config_id": f"c{k}", "split": split, "asset": "SPX", "fold_id": fold,
                     "fold_end": end, "origin": t, "horizon": 1, "loss": loss[t], "naive_loss": naive[t],
                     "ql": loss[t], "rw_ql": naive[t], "garch_ql": garch * naive[t], "mase_scale": 1.0}
                )  # fmt: skip
    ranked = pd.DataFrame({"model": "m", "config_id": [f"c{k}" for k in range(len(factors))], "status": "ok"})
    return pd.DataFrame(rows, columns=v.LOSS_COLUMNS), ranked


def test_one_truly_better_configuration_is_found_and_alone_in_the_mcs():
    losses, ranked = _losses([0.7, 1.0, 1.0, 1.0, 1.0])
    out = v.compute(ranked, losses)
    assert out.spa["val"] < 0.05 and out.spa["test"] < 0.05
    table = out.table.set_index("config_id")
    assert table["in_mcs"].tolist() == [True, False, False, False, False]
    assert table.loc["c0", "beats_naive"] and table.loc["c0", "val_beats_naive"]
    assert not table.loc[["c1", "c2", "c3", "c4"], "beats_naive"].any()
    assert out.origins == {"val": N, "test": N} and out.block_size["val"] == int(np.sqrt(N))


def test_all_equal_to_naive_finds_nothing_and_keeps_them_all():
    losses, ranked = _losses([1.0] * 5, seed=3)
    out = v.compute(ranked, losses)
    assert out.spa["val"] > 0.1 and out.spa["test"] > 0.1
    assert out.table["in_mcs"].eq(True).sum() >= 4
    assert v.spa_words(out.spa["test"]).startswith("no evidence")


def test_bootstraps_are_seeded_and_deterministic():
    losses, ranked = _losses([0.99, 1.0, 1.01], seed=5)
    a = v.compute(ranked, losses, v.Settings(reps=300, block_size=5, seed=11))
    b = v.compute(ranked, losses, v.Settings(reps=300, block_size=5, seed=11))
    c = v.compute(ranked, losses, v.Settings(reps=300, block_size=5, seed=12))
    assert a.spa == b.spa and a.table.equals(b.table)
    assert a.block_size == {"val": 5, "test": 5}
    p = ["mcs_pvalue", "test_mcs_pvalue"]
    assert a.spa != c.spa or not np.allclose(a.table[p].to_numpy(float), c.table[p].to_numpy(float))  # seed used


def test_pooled_dm_is_the_metric_module_test_on_seed_averaged_losses():
    losses, ranked = _losses([0.9, 1.1], seed=1)
    out = v.compute(ranked, losses).table.set_index("config_id")
    part = losses[(losses["split"] == "test") & (losses["config_id"] == "c1")]
    stat, p = dm_test(part["loss"].to_numpy() - part["naive_loss"].to_numpy(), 1)
    assert out.loc["c1", "test_dm_stat_pooled"] == pytest.approx(stat)
    assert out.loc["c1", "test_dm_p_pooled"] == pytest.approx(p) and p > 0.5
    assert v.verdict_words(p) in ("worse than naive", "not better than naive")
    assert v.verdict_words(0.01) == "beats naive" and v.verdict_words(0.99) == "worse than naive"


def test_unit_losses_average_the_horizon_by_hand():
    table = pd.DataFrame(
        {
            "split": ["val"] * 4,
            "origin": [1, 1, 2, 2],
            "step": [1, 2, 1, 2],
            "y_true": [10.0, 12.0, 11.0, 9.0],
            "y_pred": [11.0, 12.0, 11.0, 13.0],
            "y_naive": [9.0, 9.0, 12.0, 12.0],
        }
    )
    from analysis.losses import unit_losses

    out = unit_losses(table).set_index("origin")
    assert out.loc[1, "loss"] == pytest.approx(0.5) and out.loc[1, "naive_loss"] == pytest.approx(2.0)
    assert out.loc[2, "loss"] == pytest.approx(2.0) and out.loc[2, "naive_loss"] == pytest.approx(2.0)
    assert out["horizon"].tolist() == [2, 2]
    assert out["ql"].isna().all()  # a table without quantiles: no quantile loss, not zero


def test_the_distribution_is_judged_against_the_random_walk_and_garch_separately():
    # c0's quantile loss is 0.7 × the random walk's, GARCH's is 0.5 × the walk's: c0 beats the walk, not GARCH.
    losses, ranked = _losses([0.7, 1.0, 1.0], garch=0.5)
    out = v.compute(ranked, losses)
    table = out.table.set_index("config_id")
    assert table.loc["c0", "beats_naive_prob"] and not table.loc[["c1", "c2"], "beats_naive_prob"].any()
    assert not table["beats_garch"].any() and (table["test_dm_p_garch"] > 0.95).all()
    assert out.spa_of["prob"]["test"] < 0.05 and out.spa_of["garch"]["test"] > 0.1
    assert table["in_mcs_ql"].tolist() == [True, False, False]
    summary = out.summary()
    assert summary["beats_naive_prob_count"]["test"] == 1 and summary["beats_garch_count"]["test"] == 0


def test_without_quantiles_the_distribution_is_untested_and_the_point_verdicts_stand():
    losses, ranked = _losses([0.7, 1.0])
    losses[["ql", "rw_ql", "garch_ql"]] = np.nan
    out = v.compute(ranked, losses)
    assert out.table["beats_naive_prob"].isna().all() and out.table["beats_garch"].isna().all()
    assert out.spa_of["prob"] == {} and out.spa["test"] < 0.05
    assert any("no forecast distributions" in n for n in out.notes)


def test_other_horizons_are_left_out_and_named():
    losses, ranked = _losses([0.8, 1.0, 1.0])
    losses.loc[losses["config_id"] == "c2", "horizon"] = 5
    out = v.compute(ranked, losses)
    assert out.horizon == 1 and out.configurations == {"val": 2, "test": 2}
    assert any("another horizon" in n for n in out.notes)
    assert out.table.set_index("config_id")["in_mcs"].isna()["c2"]


@pytest.mark.parametrize(
    "settings, message",
    [
        (v.Settings(reps=10), "--bootstrap-reps must be at least 100"),
        (v.Settings(block_size=0), "--block-size must be at least 1"),
        (v.Settings(mcs_size=1.5), "--mcs-size must be between 0 and 1"),
        (v.Settings(seed=-1), "--bootstrap-seed must not be negative"),
    ],
)
def test_settings_out_of_range_are_named(settings, message):
    with pytest.raises(v.VerdictError, match=message):
        settings.check()


def _asset_losses(factors: dict[str, float], scales: dict[str, float], n: int = 40) -> pd.DataFrame:
    """Test-split losses of configuration c0 on each asset: factor × naive, in price units × scale."""
    rng = np.random.default_rng(3)
    rows = []
    for asset, factor in factors.items():
        naive = (np.abs(rng.standard_t(5, n)) + 1) * scales[asset]
        loss = naive * factor + rng.normal(0, 0.05, n) * scales[asset]
        for t in range(n):
            origin = pd.Timestamp("2020-01-01") + pd.Timedelta(days=t)
            # The distribution's losses mirror the point's; GARCH's are lower than either.
            losses = {
                "loss": loss[t],
                "naive_loss": naive[t],
                "ql": loss[t],
                "rw_ql": naive[t],
                "garch_ql": 0.3 * naive[t],
            }
            rows.append(
                {"model": "m", "config_id": "c0", "split": "test", "asset": asset, "fold_id": f"{asset}:f1",
                 "fold_end": "20200301", "origin": origin, "horizon": 1, **losses, "mase_scale": scales[asset]}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=v.LOSS_COLUMNS)


def test_assets_beating_naive_counts_each_asset_by_its_own_dm_test():
    from analysis.universe import per_asset

    losses = _asset_losses({"X": 0.5, "Y": 1.5}, {"X": 1.0, "Y": 1.0})
    ranked = pd.DataFrame({"model": ["m"], "config_id": ["c0"], "status": ["ok"]})
    runs = pd.DataFrame(
        {"model": "m", "config_id": "c0", "asset": ["X", "Y"], "status": "complete", "val_rel_mae": [0.5, 1.5]}
    )
    row = per_asset(ranked, runs, losses, "val_rel_mae").iloc[0]
    assert row["assets_beating_naive"] == "1/2" and row["assets_beating_naive_k"] == 1
    assert row["assets_beating_naive_prob"] == "1/2" and row["assets_beating_garch"] == "0/2"
    assert row["worst_asset"] == "Y" and row["worst_asset_val_rel_mae"] == 1.5


def test_universe_losses_are_scaled_per_unit_then_averaged_over_assets_per_date():
    losses = _asset_losses({"X": 0.5, "Y": 1.5}, {"X": 2.0, "Y": 400.0})
    series = v.over_assets(losses, [("m", "c0")])
    assert len(series) == 40 and set(series["asset"]) == {"(universe)"}
    day = losses["origin"].iloc[7]
    at = losses[losses["origin"] == day]
    expected = (at["loss"] / at["mase_scale"]).mean()  # by hand: each asset in units of its own scale
    assert series.loc[series["origin"] == day, "loss"].item() == pytest.approx(expected)
    # Y's price level (200× X's) does not make it weigh 200× more: both halves count the same.
    assert series["naive_loss"].mean() == pytest.approx((losses["naive_loss"] / losses["mase_scale"]).mean())


def test_configurations_with_identical_losses_share_their_mcs_result():
    losses, ranked = _losses([0.7, 1.0, 1.0])
    twin = losses[losses["config_id"] == "c1"].assign(config_id="c3")  # c3: c1's very forecasts
    losses = pd.concat([losses, twin], ignore_index=True)
    ranked = pd.concat([ranked, pd.DataFrame({"model": ["m"], "config_id": ["c3"], "status": ["ok"]})])
    table = v.compute(ranked, losses).table.set_index("config_id")
    assert table.loc["c3", "in_mcs"] == table.loc["c1", "in_mcs"]
    assert table.loc["c3", "mcs_pvalue"] == table.loc["c1", "mcs_pvalue"]
    assert table.loc["c0", "in_mcs"]


def test_a_unit_without_readable_forecasts_is_named_not_fatal(tmp_path):
    from analysis.losses import read_tables

    runs = pd.DataFrame(
        {"model": "m", "config_id": "c0", "fold_id": "f1", "seed": 7, "trial_path": str(tmp_path), "unit": "u1",
         "asset": "", "fold_end": "2020", "mase_scale": 1.0, "status": "complete"}, index=[0],
    )  # fmt: skip
    tables = read_tables(runs)
    assert tables.unreadable == [f"{tmp_path}/units/u1/predictions.parquet"]
    assert tables.losses.empty and tables.garch.empty
