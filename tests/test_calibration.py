"""Calibration tests (analysis.calibration) against hand-computed values and seeded simulations (no Ray)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from analysis import calibration as cal
from trainables.quantiles import LEVELS

Z = stats.norm.ppf(LEVELS)  # the true N(0, 1) quantiles


def _seq(text: str) -> np.ndarray:
    return np.array([c == "1" for c in text.replace(" ", "")])


def _hits(n: int, x: int) -> np.ndarray:
    return np.arange(n) < x


# --- Kupiec ---------------------------------------------------------------------------------


def test_kupiec_by_hand():
    # n = 100, x = 10, p = 0.05:
    # LR = −2[90 ln 0.95 + 10 ln 0.05 − 90 ln 0.9 − 10 ln 0.1] = −2[90 ln(0.95/0.9) + 10 ln 0.5]
    #    = −2[90 · 0.0540672 − 6.9314718] = −2[4.8660499 − 6.9314718] = 4.1308438
    t = cal.kupiec(_hits(100, 10), 0.05)
    lr = -2 * (90 * math.log(0.95 / 0.9) + 10 * math.log(0.5))
    assert t.stat == pytest.approx(lr, rel=1e-12)
    assert t.stat == pytest.approx(4.1308438, abs=1e-6)
    # χ²(1) survival = erfc(sqrt(LR / 2))
    assert t.pvalue == pytest.approx(math.erfc(math.sqrt(lr / 2)), rel=1e-10)
    assert (t.n, t.hits, t.expected, t.observed) == (100, 10, 0.05, 0.1)


def test_kupiec_at_no_hits_and_all_hits():
    # x = 0: the x ln terms vanish (0 ln 0 = 0): LR = −2 n ln(1 − p) = −400 ln 0.975 = 10.1271232
    t = cal.kupiec(_hits(200, 0), 0.025)
    assert t.stat == pytest.approx(-400 * math.log(0.975), rel=1e-12)
    assert t.stat == pytest.approx(10.1271232, abs=1e-6)
    # x = n: LR = −2 n ln p = −20 ln 0.5 = 13.863
    t = cal.kupiec(_hits(10, 10), 0.5)
    assert t.stat == pytest.approx(-20 * math.log(0.5), rel=1e-12)
    assert np.isfinite(t.pvalue)


def test_kupiec_is_zero_at_the_nominal_rate():
    t = cal.kupiec(_hits(100, 20), 0.2)
    assert t.stat == pytest.approx(0.0, abs=1e-12)
    assert t.pvalue == pytest.approx(1.0)


def test_untested_below_five_expected_hits():
    assert cal.kupiec(_hits(199, 3), 0.025) is None  # 199 · 0.025 = 4.975
    assert cal.kupiec(_hits(200, 3), 0.025) is not None  # 200 · 0.025 = 5
    assert cal.christoffersen([_hits(100, 3), _hits(99, 0)], 0.025) is None  # pooled 199
    assert cal.christoffersen([_hits(100, 3), _hits(100, 0)], 0.025) is not None
    assert cal.hac_coverage(np.ones((24, 1), bool), 0.2) is None  # 24 · 1 · 0.2 = 4.8
    assert cal.hac_coverage(np.ones((5, 5), bool), 0.2) is not None  # 5 · 5 · 0.2 = 5


# --- Christoffersen -------------------------------------------------------------------------


def test_christoffersen_by_hand():
    seq = _seq("00111 00010")  # n = 10, x = 4
    # transitions 00 01 11 11 10 00 00 01 10 → n00 = 3, n01 = 2, n10 = 2, n11 = 2
    assert cal.transitions([seq]) == (3, 2, 2, 2)
    # π01 = 2/5, π11 = 2/4, π = 4/9
    # ln L(π)         = 5 ln(5/9) + 4 ln(4/9)           = −2.9389333 − 3.2437209 = −6.1826542
    # ln L(π01, π11)  = 3 ln(3/5) + 2 ln(2/5) + 4 ln(1/2) = −1.5324769 − 1.8325815 − 2.7725887 = −6.1376471
    # LR_ind = −2(−6.1826542 + 6.1376471) = 0.0900142
    ind = -2 * (
        (5 * math.log(5 / 9) + 4 * math.log(4 / 9)) - (3 * math.log(3 / 5) + 2 * math.log(2 / 5) + 4 * math.log(1 / 2))
    )
    assert ind == pytest.approx(0.0900142, abs=1e-6)
    assert cal.independence([seq]) == pytest.approx(ind, rel=1e-12)
    # LR_pof (p = 0.5) = −2[10 ln 0.5 − 6 ln 0.6 − 4 ln 0.4] = −2[−6.9314718 + 6.7301167] = 0.4027103
    pof = -2 * (10 * math.log(0.5) - 6 * math.log(0.6) - 4 * math.log(0.4))
    assert pof == pytest.approx(0.4027103, abs=1e-6)
    t = cal.christoffersen([seq], 0.5)
    assert t.stat == pytest.approx(pof + ind, rel=1e-12)
    assert t.pvalue == pytest.approx(math.exp(-(pof + ind) / 2), rel=1e-10)  # χ²(2) survival = e^(−x/2)
    assert (t.n, t.hits) == (10, 4)


def test_transitions_never_cross_a_sequence_boundary():
    a, b = _seq("00111"), _seq("00010")
    # a: 00 01 11 11 → (1, 1, 0, 2); b: 00 00 01 10 → (2, 1, 1, 0); the 1 → 0 from a's end to b's
    # start is not a transition
    assert cal.transitions([a, b]) == (3, 2, 1, 2)
    assert cal.transitions([np.concatenate([a, b])]) == (3, 2, 2, 2)
    # split: π01 = 2/5, π11 = 2/3, π = 4/8
    split = -2 * (
        8 * math.log(0.5) - (3 * math.log(3 / 5) + 2 * math.log(2 / 5) + math.log(1 / 3) + 2 * math.log(2 / 3))
    )
    assert cal.independence([a, b]) == pytest.approx(split, rel=1e-12)
    assert cal.independence([a, b]) != pytest.approx(cal.independence([np.concatenate([a, b])]))
    # the pof part pools both sequences: same as the concatenation
    assert cal.christoffersen([a, b], 0.5).stat - cal.independence([a, b]) == pytest.approx(
        cal.kupiec(np.concatenate([a, b]), 0.5).stat
    )


def test_independence_with_an_empty_transition_row_is_finite():
    seq = _seq("000000001")  # n00 = 7, n01 = 1, n10 = n11 = 0: the row after a hit is empty
    assert cal.transitions([seq]) == (7, 1, 0, 0)
    assert cal.independence([seq]) == pytest.approx(0.0, abs=1e-12)  # π01 = π = 1/8: nothing to gain
    assert cal.independence([_seq("0000000000")]) == 0.0  # no hits at all
    assert cal.independence([_seq("1"), _seq("0")]) == 0.0  # no transitions at all
    t = cal.christoffersen([_seq("0" * 200)], 0.025)
    assert np.isfinite(t.stat) and np.isfinite(t.pvalue)
    assert t.stat == pytest.approx(-400 * math.log(0.975))  # all pof


# --- HAC coverage ---------------------------------------------------------------------------


def test_hac_coverage_with_h1_is_a_plain_t_test():
    hits = _hits(25, 10)[:, None]  # 25 origins, 10 hits, p = 0.2
    # d̄ = 0.4 − 0.2 = 0.2; variance (ddof 0) = 0.4 · 0.6 = 0.24; stat = 0.2 / sqrt(0.24 / 25) = 2.0412415
    t = cal.hac_coverage(hits, 0.2)
    assert t.stat == pytest.approx(0.2 / math.sqrt(0.24 / 25), rel=1e-12)
    assert t.stat == pytest.approx(2.0412415, abs=1e-6)
    assert t.pvalue == pytest.approx(math.erfc(t.stat / math.sqrt(2)), rel=1e-10)  # 2 · Φ(−|z|)
    # scipy's one-sample t statistic uses ddof 1: ours is it × sqrt(n / (n − 1))
    scipy_t = stats.ttest_1samp(hits[:, 0].astype(float), 0.2).statistic
    assert t.stat == pytest.approx(scipy_t * math.sqrt(25 / 24), rel=1e-12)
    assert (t.n, t.hits, t.observed) == (25, 10, 0.4)


def test_hac_coverage_with_h2_by_hand():
    hits = np.array([[1, 1], [1, 0], [0, 0], [1, 1], [0, 1]], bool)  # p = 0.5: 5 · 2 · 0.5 = 5 expected
    # d = (0.5, 0, −0.5, 0.5, 0), d̄ = 0.1, centred (0.4, −0.1, −0.6, 0.4, −0.1)
    # γ0 = (0.16 + 0.01 + 0.36 + 0.16 + 0.01) / 5 = 0.14
    # γ1 = (−0.04 + 0.06 − 0.24 − 0.04) / 5 = −0.052, Bartlett weight 2 (1 − 1/2) = 1
    # var = 0.14 − 0.052 = 0.088; stat = 0.1 / sqrt(0.088 / 5) = 0.7537784
    t = cal.hac_coverage(hits, 0.5)
    assert t.stat == pytest.approx(0.1 / math.sqrt(0.088 / 5), rel=1e-10)
    assert t.stat == pytest.approx(0.7537784, abs=1e-6)
    assert (t.n, t.hits, t.observed) == (10, 6, 0.6)


def test_hac_coverage_with_zero_variance():
    t = cal.hac_coverage(np.ones((25, 1), bool), 0.2)  # d = 0.8 everywhere: certainly wrong
    assert t.pvalue == 0.0 and t.stat == np.inf
    assert cal.hac_coverage(np.tile([True, False], (5, 1)), 0.5) is None  # d = 0 everywhere


# --- PIT ------------------------------------------------------------------------------------


def test_pit_bins_by_hand():
    q = np.tile(np.arange(11.0), (8, 1))  # quantiles 0, 1, …, 10 in every row
    q[7, 3] = np.nan  # this row is dropped
    y = np.array([-1.0, 0.0, 0.5, 5.0, 3.2, 10.0, 10.5, 4.0])
    # bins: −1 → 0; 0 (ties q0.025) → 1; 0.5 → 1; 5 (ties q0.5) → 6; 3.2 → 4; 10 (ties q0.975) → 11; 10.5 → 11
    h = cal.pit(y, q)
    assert h.counts == (1, 2, 0, 0, 1, 0, 1, 0, 0, 0, 0, 2)
    assert h.n == 7
    expected = np.array([0.025, 0.075, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.075, 0.025])
    assert np.allclose(h.expected, expected) and sum(h.expected) == pytest.approx(1.0)
    e = 7 * expected  # Pearson: Σ (count − n·share)² / (n·share)
    stat = np.sum((np.array(h.counts) - e) ** 2 / e)
    assert h.stat == pytest.approx(stat)
    assert h.pvalue == pytest.approx(stats.chi2.sf(stat, 11))


def test_pit_of_nothing():
    h = cal.pit(np.zeros(2), np.full((2, 11), np.nan))
    assert h.n == 0 and sum(h.counts) == 0 and np.isnan(h.pvalue)


# --- calibrate ------------------------------------------------------------------------------


def _normal(n: int, sigma: float = 1.0, seed: int = 0):
    """n origins of y ~ N(0, 1) at h = 1 with the quantiles of N(0, σ²), two sequences."""
    y = np.random.default_rng(seed).standard_normal((n, 1))
    q = np.broadcast_to(sigma * Z, (n, 1, len(LEVELS))).copy()
    return y, q, np.repeat(["SPX|f1", "SPX|f2"], [n // 2, n - n // 2])


def _walk(n: int, h: int, seed: int = 0):
    """h-step changes of a Gaussian random walk from n overlapping origins (two folds) with their
    true quantiles N(0, k) at step k: step-1 hits independent, all-step hits overlapping."""
    rng = np.random.default_rng(seed)
    ys = []
    for _ in range(2):
        x = np.concatenate([[0.0], np.cumsum(rng.standard_normal(n // 2 + h))])
        ys.append(np.stack([x[k : k + n // 2] - x[: n // 2] for k in range(1, h + 1)], axis=1))
    q = np.sqrt(np.arange(1, h + 1))[None, :, None] * Z[None, None, :]
    return np.concatenate(ys), np.broadcast_to(q, (n, h, len(LEVELS))).copy(), np.repeat(["a", "b"], n // 2)


@pytest.mark.parametrize("h", [1, 5])
def test_true_quantiles_are_calibrated(h):
    c = cal.calibrate(*_walk(2000, h, seed=h))
    assert c.word == "calibrated"
    assert len(c.tests) == 9
    assert [t.name for t in c.tests[:3]] == ["kupiec 80 % band", "christoffersen 80 % band", "hac 80 % band"]
    assert c.coverage80 == pytest.approx(0.8, abs=0.03)
    assert c.coverage95 == pytest.approx(0.95, abs=0.02)
    assert c.pit.n == 2000 and sum(c.pit.counts) == 2000


def test_narrow_quantiles_are_miscalibrated():
    c = cal.calibrate(*_normal(2000, sigma=0.5))
    # the 80 % band of N(0, 0.25) covers P(|Z| < 0.64) ≈ 0.48 of N(0, 1)
    assert c.word.startswith("miscalibrated: 80 % band covers 0.")
    assert c.word == f"miscalibrated: 80 % band covers {c.coverage80:.2f}"
    assert c.coverage80 == pytest.approx(0.48, abs=0.03)


def test_a_too_light_tail_is_named_with_its_hit_rate():
    y, q, seq = _normal(2000)
    q[:, :, 0] = stats.norm.ppf(0.06)  # the 0.025 quantile put at the 6 % one
    c = cal.calibrate(y, q, seq)
    assert c.word.startswith("miscalibrated: lower 2.5 % tail hit 0.0")
    rate = float(np.mean(y[:, 0] < q[:, 0, 0]))
    assert c.word == f"miscalibrated: lower 2.5 % tail hit {rate:.3f}"


def test_twenty_origins_are_untested():
    c = cal.calibrate(*_normal(20))  # 20 · 0.2 = 4 expected band misses at most
    assert c.word == "untested" and c.tests == []
    assert np.isfinite(c.coverage80)


def test_nan_quantiles_drop_rows_per_event_and_summary_is_json():
    y, q, seq = _normal(400)
    q[:, :, -1] = np.nan  # no 0.975 level: the upper tail and the 95 % band are not available
    c = cal.calibrate(y, q, seq)
    assert not any("upper" in t.name for t in c.tests)
    assert any(t.name == "kupiec 80 % band" for t in c.tests)
    assert np.isnan(c.coverage95)
    assert c.pit.n == 0  # every row lacks a quantile
    s = json.loads(json.dumps(c.summary(), allow_nan=False))
    assert s["coverage95"] is None and s["word"] == c.word
    assert {t["name"] for t in s["tests"]} == {t.name for t in c.tests}
    assert len(s["pit"]["counts"]) == 12


def test_point_only_forecast_is_untested():
    y, q, seq = _normal(400)
    c = cal.calibrate(y, np.full_like(q, np.nan), seq)
    assert c.word == "untested" and np.isnan(c.coverage80)


def test_bad_shapes_raise():
    y, q, seq = _normal(40)
    with pytest.raises(cal.CalibrationError):
        cal.calibrate(y, q[:, :, :5], seq)
    with pytest.raises(cal.CalibrationError):
        cal.calibrate(y, q, seq[:-1])


def test_kupiec_size_on_the_80_band_is_about_five_percent():
    rng = np.random.default_rng(7)
    band = cal.EVENTS[0]
    q = np.broadcast_to(Z, (250, len(LEVELS)))
    rejects = [
        cal.kupiec(band.hits(rng.standard_normal(250), q).astype(bool), band.p).pvalue < 0.05 for _ in range(400)
    ]
    assert 0.02 <= np.mean(rejects) <= 0.09


def test_garch_of_two_sweeps_on_the_same_asset_and_folds_is_judged_once():
    import pandas as pd
    from scipy import stats

    from analysis.calibrated import references
    from trainables import quantiles

    rng = np.random.default_rng(0)
    n = 400
    garch = pd.DataFrame({"asset": "SPX", "fold_id": "f1", "split": "test", "horizon": 1,
                          "origin": np.arange(n), "step": 1, "y_true": rng.normal(size=n)})  # fmt: skip
    for level, col in zip(quantiles.LEVELS, quantiles.columns()):
        garch[col] = stats.norm.ppf(level)
    once = references(pd.DataFrame(), garch)["GARCH(1,1)-t"]
    twice = references(pd.DataFrame(), pd.concat([garch, garch], ignore_index=True))["GARCH(1,1)-t"]
    assert once["word"] == "calibrated" and twice == once
