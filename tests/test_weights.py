"""Released weights are referred to, not copied, and read from disk once per process.

Tiny random models saved to a directory stand in for the released ones (the hubs are unreachable):
they go through the same `--pretrained DIR` path as real weights.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import test_models as contract
from conftest import synthetic_prices

from trainables import foundation, registry, weights
from trainables.unit import origins, run_unit

pytestmark = pytest.mark.slow
FOUNDATION = [m for m in registry.MODELS if registry.pretrained(m)]
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.ckpt", "*.pt")


def _weight_files(directory: str) -> list[str]:
    return [f for p in WEIGHT_FILES for f in glob.glob(os.path.join(directory, "**", p), recursive=True)]


def _pretrained_config(model: str, directory: str, **extra) -> dict:
    """The TINY configuration loading the random model saved at `directory` as released weights."""
    flags = contract.save_random_model(model, directory)
    given = {flags[i].removeprefix("--"): flags[i + 1] for i in range(0, len(flags), 2)}
    return contract.tiny(model, init="pretrained", **given, **extra)


@pytest.mark.parametrize("model", FOUNDATION)
def test_a_zero_shot_unit_stores_a_reference_and_loads_the_same_forecasts(model, tmp_path):
    entry = registry.get(model)
    config = _pretrained_config(model, str(tmp_path / "released"), **entry.spaces().ZERO_SHOT)
    data = contract._unit_data(synthetic_prices(320))
    run_unit(entry.adapter(), config, data, 0, str(tmp_path / "unit"), None)
    saved = tmp_path / "unit" / "model"
    assert not _weight_files(str(saved)) and sum(f.stat().st_size for f in saved.rglob("*")) < 20_000
    fitted = entry.adapter()(config, seed=0)
    fitted.fit(data, None)
    loaded = entry.adapter().load(str(saved))
    where = origins(data.test, fitted.context_length(config), fitted.horizon(config))[:3]
    np.testing.assert_allclose(loaded.predict(data, where), fitted.predict(data, where), rtol=1e-6)
    # Weights changed under the reference: loading says so instead of forecasting with other weights.
    victim = _weight_files(str(tmp_path / "released"))[0]
    with open(victim, "ab") as f:
        f.write(b"\0")
    with pytest.raises(weights.WeightsChanged, match="not the ones this unit was evaluated with"):
        entry.adapter().load(str(saved))


def test_kronos_with_only_the_predictor_fine_tuned_refers_to_its_tokenizer(tmp_path):
    config = _pretrained_config("kronos", str(tmp_path / "released"), tokenizer_steps=0, predictor_steps=2)
    data = contract._unit_data(synthetic_prices(320))
    run_unit(registry.get("kronos").adapter(), config, data, 0, str(tmp_path / "unit"), None)
    saved = tmp_path / "unit" / "model"
    meta = foundation.load_meta(str(saved))
    assert list(meta["weights"]) == ["tokenizer"] and meta["weights"]["tokenizer"]["sha256"]
    assert _weight_files(str(saved / "predictor")) and not (saved / "tokenizer").exists()
    loaded = registry.get("kronos").adapter().load(str(saved))
    assert np.isfinite(loaded.predict(data, np.array([data.test.start]))).all()


def test_a_chronos2_lora_unit_stores_only_its_adapter(tmp_path):
    from trainables.chronos2 import Chronos2Adapter

    config = _pretrained_config("chronos2", str(tmp_path / "released"), finetune_mode="lora", lora_r=4, lora_alpha=8)
    data = contract._unit_data(synthetic_prices(320))
    adapter = Chronos2Adapter(config, seed=0)
    adapter.fit(data, None)
    adapter.save(str(tmp_path / "m"))
    names = sorted(os.path.basename(f) for f in _weight_files(str(tmp_path / "m")))
    assert names == ["adapter_model.safetensors"], names
    base = sum(os.path.getsize(f) for f in _weight_files(str(tmp_path / "released")))
    assert os.path.getsize(_weight_files(str(tmp_path / "m"))[0]) < base / 4
    loaded = Chronos2Adapter.load(str(tmp_path / "m"))
    where = origins(data.test, 64, 2)[:3]
    np.testing.assert_allclose(loaded.predict(data, where), adapter.predict(data, where), rtol=1e-5, atol=1e-6)


def test_a_reference_names_the_hub_revision_of_an_hf_cache_snapshot(tmp_path):
    snapshot = tmp_path / "models--o--n" / "snapshots" / "0123abcd4567ef"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"weights")
    ref = weights.reference(str(snapshot))
    assert ref["revision"] == "0123abcd4567ef" and ref["path"] == str(snapshot) and len(ref["sha256"]) == 64
    assert weights.follow(ref) == str(snapshot)
    assert weights.reference(str(tmp_path / "models--o--n"))["revision"] is None


@pytest.mark.parametrize("model", FOUNDATION)
def test_released_weights_are_read_once_per_process_and_each_unit_gets_its_own_copy(model, tmp_path, monkeypatch):
    entry = registry.get(model)
    config = _pretrained_config(model, str(tmp_path / "released"))
    reads = []
    real = foundation.pretrained

    def counting(what, path, load, *args):  # the real cache, with its disk reads counted
        return real(what, path, lambda p: reads.append(p) or load(p), *args)

    monkeypatch.setattr(foundation, "pretrained", counting)
    foundation._PRETRAINED.clear()
    data = contract._unit_data(synthetic_prices(320))
    zero_shot = {**config, **entry.spaces().ZERO_SHOT}
    where = np.array([data.test.start, data.test.start + 4])
    first = entry.adapter()(zero_shot, seed=0)
    first.fit(data, None)
    before = first.predict(data, where)
    tuned = entry.adapter()(config, seed=0)  # fine-tunes its copy
    tuned.fit(data, None)
    after = entry.adapter()(zero_shot, seed=0)
    after.fit(data, None)
    assert len(reads) == len(entry.weight_keys)  # one read per weights directory, for three units
    np.testing.assert_allclose(after.predict(data, where), before, rtol=1e-6)  # the cache was not touched


def test_kronos_saves_a_configuration_holding_numpy_scalars(tmp_path):
    """Tune and Optuna may hand numpy values; adapter.json is written with the numpy-safe encoder."""
    from trainables.kronos import KronosAdapter

    config = contract.tiny("kronos", context_length=np.int64(64), temperature=np.float32(0.9), predictor_steps=0)
    adapter = KronosAdapter(config, seed=np.int64(3))
    adapter.fit(contract._unit_data(synthetic_prices(320)), None)
    adapter.save(str(tmp_path / "m"))
    loaded = KronosAdapter.load(str(tmp_path / "m"))
    assert loaded.config["context_length"] == 64 and abs(loaded.config["temperature"] - 0.9) < 1e-6 and loaded.seed == 3
