"""The TFT's fast path (a fold's datasets built once per process, samples kept in memory) gives
the same forecasts as pytorch-forecasting's plain path."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_TFT, synthetic_prices

from trainables import tft
from trainables.adapter import UnitData, Window
from trainables.features import add_features
from trainables.unit import origins


def _data() -> UnitData:
    frame, feats = add_features(synthetic_prices(320), "BASELINE_FEATURES")
    n = len(frame)
    return UnitData(frame, feats, Window(0, n - 80), Window(n - 80, n - 40), Window(n - 40, n))


def _forecasts(seed: int, reuse: bool, monkeypatch) -> np.ndarray:
    monkeypatch.setattr(tft.TFTAdapter, "reuse_data", reuse)
    data = _data()  # a new frame object each time: the cache keys on content
    # Two epochs over every batch, so the second epoch reads samples from memory.
    adapter = tft.TFTAdapter({**TINY_TFT, "max_epochs": 2, "limit_train_batches": 100}, seed=seed)
    adapter.fit(data, None)
    return adapter.predict(data, origins(data.test, 20, 2))


@pytest.mark.parametrize("seed", [7, 11])
def test_fast_path_forecasts_equal_the_plain_path(seed, monkeypatch):
    tft._DATASETS.clear()
    plain = _forecasts(seed, False, monkeypatch)
    assert not tft._DATASETS
    fast = _forecasts(seed, True, monkeypatch)
    again = _forecasts(seed + 1, True, monkeypatch)  # another seed of the same fold: the same datasets
    assert len(tft._DATASETS) == 1
    ((_, _, memo, _),) = tft._DATASETS.values()
    assert all(item is not None for item in memo.items)  # every sample computed once, then served
    np.testing.assert_allclose(fast, plain, rtol=1e-6)
    assert not np.allclose(fast, again)  # the seed matters, so equal forecasts are not a given
    np.testing.assert_allclose(again, _forecasts(seed + 1, False, monkeypatch), rtol=1e-6)
