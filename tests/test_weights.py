"""Released weights are referred to, not copied, and read from disk once per process.

Tiny random models saved to a directory stand in for the released ones (the hubs are unreachable):
they go through the same `--pretrained DIR` path as real weights.
"""

from __future__ import annotations

import os

import contract
import numpy as np
import pytest
from conftest import synthetic_prices

from trainables import foundation, registry, weights
from trainables.unit import origins, run_unit

pytestmark = pytest.mark.slow
FOUNDATION = [m for m in registry.MODELS if registry.pretrained(m)]
_weight_files = contract.weight_files


def _pretrained_config(model: str, directory: str, **extra) -> dict:
    """The TINY configuration loading the random model saved at `directory` as released weights."""
    flags = contract.save_random_model(model, directory)
    given = {flags[i].removeprefix("--"): flags[i + 1] for i in range(0, len(flags), 2)}
    return contract.tiny(model, init="pretrained", **given, **extra)


@pytest.mark.parametrize("model", FOUNDATION)
def test_a_zero_shot_unit_stores_a_reference_and_loads_the_same_forecasts(model, tmp_path):
    entry = registry.get(model)
    config = _pretrained_config(model, str(tmp_path / "released"), **entry.spaces().ZERO_SHOT)
    data = contract.unit_data(synthetic_prices(320))
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
    data = contract.unit_data(synthetic_prices(320))
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
    data = contract.unit_data(synthetic_prices(320))
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


# The package functions that read released weights from disk, per model.
READERS = {
    "toto": [("toto.model.toto", "Toto", "load_from_checkpoint")],
    "chronos2": [("chronos.chronos2", "Chronos2Pipeline", "from_pretrained")],
    "kronos": [("kronos_finance._vendor.kronos_model", c, "from_pretrained") for c in ("Kronos", "KronosTokenizer")],
}


def _count_reads(model: str, monkeypatch) -> list[str]:
    """Wrap the package's real loaders so each disk read is counted (and still happens)."""
    import importlib

    reads: list[str] = []
    for module, cls_name, method in READERS[model]:
        cls = getattr(importlib.import_module(module), cls_name)
        real = getattr(cls, method)  # bound to the class

        def counting(*args, _real=real, _name=cls_name, **kwargs):
            reads.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(cls, method, staticmethod(counting))
    return reads


@pytest.mark.parametrize("model", FOUNDATION)
def test_released_weights_are_read_once_per_process_and_each_unit_gets_its_own_copy(model, tmp_path, monkeypatch):
    entry = registry.get(model)
    config = _pretrained_config(model, str(tmp_path / "released"))
    foundation._PRETRAINED.clear()
    reads = _count_reads(model, monkeypatch)
    data = contract.unit_data(synthetic_prices(320))
    zero_shot = {**config, **entry.spaces().ZERO_SHOT}
    where = np.array([data.test.start, data.test.start + 4])
    first = entry.adapter()(zero_shot, seed=0)
    first.fit(data, None)
    before = first.predict(data, where)
    tuned = entry.adapter()(config, seed=0)  # fine-tunes its copy
    tuned.fit(data, None)
    after = entry.adapter()(zero_shot, seed=0)
    after.fit(data, None)
    assert len(reads) == len(READERS[model])  # one read per weights directory, for three units
    np.testing.assert_allclose(after.predict(data, where), before, rtol=1e-6)  # the cache was not touched


@pytest.mark.parametrize("model", FOUNDATION)
def test_a_fine_tuned_unit_loads_from_its_own_files_without_entering_the_cache(model, tmp_path):
    """Loading many units (analysis/ensemble.py) must not keep each one's weights in memory."""
    entry = registry.get(model)
    config = _pretrained_config(model, str(tmp_path / "released"))
    adapter = entry.adapter()(config, seed=0)
    adapter.fit(contract.unit_data(synthetic_prices(320)), None)
    adapter.save(str(tmp_path / "unit"))
    assert _weight_files(str(tmp_path / "unit"))
    foundation._PRETRAINED.clear()
    entry.adapter().load(str(tmp_path / "unit"))
    assert not foundation._PRETRAINED


def _released_dir(directory) -> str:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}")
    (directory / "model.safetensors").write_bytes(b"weights")
    return str(directory)


def test_a_reference_ignores_download_metadata_beside_the_weights(tmp_path):
    """`huggingface-cli download --local-dir` keeps (and rewrites) metadata and locks in .cache/."""
    ref = weights.reference(_released_dir(tmp_path / "w"))
    meta = tmp_path / "w" / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "model.safetensors.metadata").write_text("etag, timestamp")
    assert weights.follow(ref) == ref["path"]


def test_a_reference_falls_back_to_its_source_when_its_path_changed(tmp_path):
    source = _released_dir(tmp_path / "source")
    ref = weights.reference(source)
    ref["path"] = _released_dir(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "model.safetensors").write_bytes(b"other weights")
    assert weights.follow(ref) == source


def test_a_reference_to_weights_that_are_gone_says_so(tmp_path):
    ref = weights.reference(_released_dir(tmp_path / "w"))
    for f in (tmp_path / "w").iterdir():
        f.unlink()
    (tmp_path / "w").rmdir()
    with pytest.raises(weights.WeightsNotFound, match="gone") as raised:
        weights.follow(ref)
    assert not isinstance(raised.value, weights.WeightsChanged) and "\n" not in str(raised.value)


def test_adapter_json_takes_numpy_scalars_arrays_and_bools(tmp_path):
    meta = {"config": {"a": np.int64(3), "b": np.float32(0.5), "c": np.array([1, 2]), "d": np.bool_(True)}}
    foundation.save_meta(str(tmp_path), meta)
    assert foundation.load_meta(str(tmp_path)) == {"config": {"a": 3, "b": 0.5, "c": [1, 2], "d": True}}


def test_kronos_saves_a_configuration_holding_numpy_scalars(tmp_path):
    """Tune and Optuna may hand numpy values; adapter.json is written with the numpy-safe encoder."""
    from trainables.kronos import KronosAdapter

    config = contract.tiny("kronos", context_length=np.int64(64), temperature=np.float32(0.9), predictor_steps=0)
    adapter = KronosAdapter(config, seed=np.int64(3))
    adapter.fit(contract.unit_data(synthetic_prices(320)), None)
    adapter.save(str(tmp_path / "m"))
    loaded = KronosAdapter.load(str(tmp_path / "m"))
    assert loaded.config["context_length"] == 64 and abs(loaded.config["temperature"] - 0.9) < 1e-6 and loaded.seed == 3
