"""The sweep config file and CLI: every bad value exits 2 with a one-line message, writing nothing."""

import json
import re

import numpy as np
import pytest
from conftest import TINY_TFT, run_cli

from sweeps.spec import SpecError, read_config_file

FOLD = {
    "name": "wf_1",
    "train_start": "20100101",
    "train_end": "20151231",
    "val_start": "20160101",
    "val_end": "20161231",
    "test_start": "20170101",
    "test_end": "20181231",
}
ISSUE_EXAMPLE = {
    "output_subdir": "tft_encoder_length",
    "features": "BASELINE_FEATURES",
    "replica_seeds": [7, 11, 13],
    "walk_forward": {
        "enabled": True,
        "folds": [
            {
                "name": "wf_1",
                "train_start": "20100101",
                "train_end": "20151231",
                "val_start": "20160101",
                "val_end": "20161231",
                "test_start": "20170101",
                "test_end": "20181231",
            }
        ],
    },
    "training_config": {
        "max_encoder_length": 120,
        "max_prediction_length": 1,
        "batch_size": 64,
        "max_epochs": 20,
        "learning_rate": 0.0005,
        "hidden_size": 32,
        "attention_head_size": 2,
        "dropout": 0.1,
        "hidden_continuous_size": 8,
        "seed": 42,
        "early_stopping_patience": 5,
        "early_stopping_min_delta": 0.0,
    },
    "split_config": {
        "train_start": "20100101",
        "train_end": "20151231",
        "val_start": "20160101",
        "val_end": "20161231",
        "test_start": "20170101",
        "test_end": "20181231",
    },
    "param_ranges": {"max_encoder_length": [120, 150, 180, 210]},
}


def _write(tmp_path, obj, name="sweep.json"):
    path = tmp_path / name
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return str(path)


def test_issue_example_parses(tmp_path):
    fields = read_config_file(_write(tmp_path, ISSUE_EXAMPLE))
    assert fields["name"] == "tft_encoder_length"
    assert fields["seeds"] == (7, 11, 13)
    assert [f.name for f in fields["folds"].explicit] == ["wf_1"]
    assert fields["param_ranges"] == {"max_encoder_length": [120, 150, 180, 210]}


def test_split_config_is_used_when_walk_forward_is_off(tmp_path):
    raw = {**ISSUE_EXAMPLE, "walk_forward": {"enabled": False}}
    fields = read_config_file(_write(tmp_path, raw))
    assert [f.name for f in fields["folds"].explicit] == ["split"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": 1}, "unknown key 'colour'"),
        ({"replica_seeds": [7, "x"]}, "replica_seeds must be a non-empty list of integers"),
        ({"replica_seeds": [7, 7]}, "replica_seeds has duplicates"),
        ({"walk_forward": {"enabled": True, "folds": []}}, "walk_forward.folds must be a non-empty list"),
        ({"walk_forward": {"enabled": "yes"}}, "walk_forward.enabled must be true or false"),
        ({"walk_forward": {"enabled": True, "folds": [{"name": "a"}]}}, r"folds\[0\]: missing 'train_start'"),
        ({"param_ranges": {"hidden_size": 8}}, "param_ranges.hidden_size must be a non-empty list"),
        ({"training_config": [1]}, "training_config must be an object"),
        ({"output_subdir": "../escape"}, "output_subdir .* plain directory name"),
    ],
)
def test_bad_config_names_the_field(tmp_path, change, message):
    with pytest.raises(SpecError, match=message):
        read_config_file(_write(tmp_path, {**ISSUE_EXAMPLE, **change}))


def test_not_json(tmp_path):
    with pytest.raises(SpecError, match="not valid JSON"):
        read_config_file(_write(tmp_path, "{oops"))


CLI_CASES = [
    (["--mode", "random"], "invalid choice: 'random'"),
    (["--max-runs", "0"], "--max-runs must be at least 1"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial must be at least"),
    (["--seeds", "x,y"], "--seeds 'x,y'"),
    (["--data", "missing.parquet"], "data file 'missing.parquet' does not exist"),
    (["--asset", "FTSE"], "--asset 'FTSE' is not in the embedded data"),
    (["--folds", "400"], "--folds 400: not enough rows"),
    (["--metric", "test_pct_mae"], "must be a validation metric"),
    (["--metric", "val_bogus"], "not a known metric"),
    (["--features", "MAGIC"], "features 'MAGIC' is not a feature set"),
    (["--config", "nope.json"], "config file 'nope.json' does not exist"),
    (["--configs", "nope.json"], "--configs 'nope.json'"),
    (["--resume", "--name", "never_ran"], "nothing to resume"),
    (["--name", "../../x"], "--name '../../x' must be a plain directory name"),
    (["--name", "a/b"], "--name 'a/b' must be a plain directory name"),
    (["--name", ".hidden"], "--name '.hidden' must be a plain directory name"),
    (["--name", ".."], "--name '..' must be a plain directory name"),
    (["--resume", "--name", "../up"], "--name '../up' must be a plain directory name"),
    (["--resume", "auto", "--name", "../up"], "--name '../up' must be a plain directory name"),
    (["--horizon", "0"], "--horizon must be at least 1"),
    (["--horizon", "-2"], "--horizon must be at least 1"),
    (["--context", "0"], "--context must be at least 1"),
    (["--context", "6000"], r"needs at least 6001 \(context 6000 \+ horizon 1\)"),
    (["--origin-stride", "0"], "--origin-stride must be at least 1"),
    (["--point-only", "--metric", "val_sql"], "--metric val_sql scores the forecast distribution"),
]


def _main(args, capsys):
    """Run the CLI in-process; returns (exit code, stderr)."""
    from sweeps.cli import main

    try:
        code = main("tft", args)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, message", CLI_CASES)
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    storage = tmp_path / "results"
    code, err = _main([*args, "--storage", str(storage)], capsys)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert re.search(message, last), err
    assert not storage.exists()


@pytest.mark.parametrize(
    "config, message",
    [
        ({"training_config": {**TINY_TFT, "hidden_size": "big"}}, "training_config.hidden_size must be int"),
        ({"training_config": {"colour": 1}}, "training_config.colour is not a tft hyperparameter"),
        ({"param_ranges": {"learning_rate": [-1.0]}}, "param_ranges.learning_rate must not be negative"),
        ({"early_stop_on": "test"}, "early_stop_on 'test' is not one of val, train-tail"),
        ({"training_config": {"max_encoder_length": 6000}}, "train window has .* rows, needs at least 6001"),
        (
            {"walk_forward": {"enabled": True, "folds": [{**FOLD, "test_end": "20251231"}]}},
            "fall outside the data",
        ),
    ],
)
def test_cli_bad_hyperparameters_in_file(tmp_path, capsys, config, message):
    storage = tmp_path / "results"
    code, err = _main(["--config", _write(tmp_path, config), "--storage", str(storage)], capsys)
    assert code == 2 and re.search(message, err), err
    assert not storage.exists()


def test_bad_input_from_the_shell_is_one_line_without_traceback(tmp_path):
    proc = run_cli("--data", str(tmp_path / "prices.parquet"), "--storage", str(tmp_path / "r"), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: data file '{tmp_path / 'prices.parquet'}' does not exist"
    assert not (tmp_path / "r").exists()


def test_existing_sweep_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "results" / "tft_quick").mkdir(parents=True)
    (tmp_path / "results" / "tft_quick" / "keep.txt").write_text("x")
    code, err = _main(["--storage", str(tmp_path / "results")], capsys)
    assert code == 2 and "already exists" in err
    assert (tmp_path / "results" / "tft_quick" / "keep.txt").read_text() == "x"


def test_help_explains_every_flag():
    proc = run_cli("--help", timeout=60)
    assert proc.returncode == 0
    for flag in (
        "--mode",
        "--max-runs",
        "--num-samples",
        "--config",
        "--data",
        "--asset",
        "--folds",
        "--seeds",
        "--storage",
        "--name",
        "--resume",
        "--address",
        "--cpus-per-trial",
        "--gpus-per-trial",
        "--parallel-units",
        "--scheduler",
        "--seed",
        "--notes",
        "--fail-fast",
    ):
        assert flag in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--storage", "ftp://nowhere/x"], "--storage 'ftp://nowhere/x' is not usable"),
        (["--address", "127.0.0.1:9"], "no Ray cluster answers there"),
        (["--address", "somewhere"], "must look like HOST:PORT"),
        (["--init", "scratch"], "--init does not apply to this model"),
        (["--pretrained", "x/y"], "--pretrained does not apply to this model"),
        (["--parallel-units", "0"], "--parallel-units must be at least 1"),
        (["--gpus-per-trial", "-1"], "--gpus-per-trial must be"),
        (["--folds", "0"], "--folds must be at least 1"),
        (["--seeds", "0"], "--seeds 0: give 1.."),
    ],
)
def test_cli_bad_storage_address_and_flags(tmp_path, capsys, args, message):
    storage_flag = [] if "--storage" in args else ["--storage", str(tmp_path / "results")]
    code, err = _main([*args, *storage_flag], capsys)
    assert code == 2 and re.search(re.escape(message), err), err
    assert not (tmp_path / "results").exists()


def test_storage_that_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, err = _main(["--storage", str(tmp_path / "afile")], capsys)
    assert code == 2 and "is a file, not a directory" in err
    assert (tmp_path / "afile").read_text() == "x"


def test_config_file_values_the_wrong_type(tmp_path, capsys):
    code, err = _main(["--config", _write(tmp_path, {"training_config": {"max_epochs": 1.5}}),
                       "--storage", str(tmp_path / "r")], capsys)  # fmt: skip
    assert code == 2 and "training_config.max_epochs must be int, got 1.5" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["tft_encoder_length", "chronos2_tiny"])
def test_shipped_example_configs_validate(name, tmp_path):
    from sweeps.cli import parser, spec_from_args
    from sweeps.driver import prepare

    model = name.split("_")[0]
    path = f"sweeps/examples/{name}.json"
    extra = ["--init", "scratch"] if model == "chronos2" else []
    args = parser(model).parse_args(["--config", path, "--storage", str(tmp_path / "r"), *extra])
    prepared = prepare(spec_from_args(model, args))
    assert len(prepared.folds) >= 1 and not (tmp_path / "r").exists()


def test_missing_model_package_says_how_to_install(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from trainables import registry

    entry = registry.MODELS["chronos2"]
    monkeypatch.setitem(registry.MODELS, "chronos2", replace(entry, package="chronos_not_installed_here"))
    from sweeps.cli import main

    code = main("chronos2", ["--init", "scratch", "--storage", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "is not installed" in err and "pip install chronos-forecasting" in err
    assert not (tmp_path / "r").exists()


def test_name_traversal_is_refused_on_s3_before_anything_is_touched(capsys):
    # The bucket does not exist and no endpoint answers: a refusal that came later would say so instead.
    code, err = _main(["--storage", "s3://no-such-bucket/prefix", "--name", "../elsewhere"], capsys)
    assert code == 2 and err.strip() == err.strip().splitlines()[0]
    assert "--name '../elsewhere' must be a plain directory name" in err


@pytest.mark.parametrize(
    "model, horizon, message",
    [("kronos", "600", "kronos forecasts at most 512 steps"), ("chronos2", "1025", "chronos2 forecasts at most 1024")],
)
def test_horizon_beyond_what_a_model_forecasts(tmp_path, capsys, model, horizon, message):
    from sweeps.cli import main

    code = main(model, ["--horizon", horizon, "--init", "scratch", "--storage", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_horizon_in_param_ranges_conflicts(tmp_path, capsys):
    path = _write(tmp_path, {"param_ranges": {"max_prediction_length": [1, 5]}})
    code, err = _main(["--config", path, "--horizon", "3", "--storage", str(tmp_path / "r")], capsys)
    assert code == 2 and "--horizon fixes max_prediction_length" in err


def test_context_in_param_ranges_conflicts(tmp_path, capsys):
    path = _write(tmp_path, {"param_ranges": {"max_encoder_length": [30, 60]}})
    code, err = _main(["--config", path, "--context", "40", "--storage", str(tmp_path / "r")], capsys)
    assert code == 2 and "--context fixes max_encoder_length" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("mode", ["priority", "optuna"])
def test_context_and_horizon_fix_every_configuration(tmp_path, mode):
    from search_spaces import strategies
    from sweeps.cli import parser, spec_from_args
    from sweeps.driver import _listed
    from trainables import registry

    argv = ["--mode", mode, "--context", "40", "--horizon", "3", "--storage", str(tmp_path / "r")]
    spec = spec_from_args("tft", parser("tft").parse_args(argv))
    entry = registry.get("tft")
    fixed = spec.fixed(entry)
    assert fixed == {"max_encoder_length": 40, "max_prediction_length": 3}
    base = spec.baseline(entry.spaces().BASELINE)
    if mode == "optuna":  # Optuna's space searches max_encoder_length unless it is fixed
        search = strategies.build(mode, entry.spaces(), base, fixed=fixed)
        assert "max_encoder_length" in entry.spaces().OPTUNA
        assert search.param_space["max_encoder_length"] == 40
        assert search.param_space["max_prediction_length"] == 3
    else:  # PRIORITY lists an encoder-120 point; the configurations the driver runs
        configs = _listed(spec, base)
        assert {(c["max_encoder_length"], c["max_prediction_length"]) for c in configs} == {(40, 3)}


@pytest.mark.parametrize("mode", ["quick", "optuna"])
def test_a_context_toto_cannot_read_is_refused_at_the_door(tmp_path, capsys, mode):
    from sweeps.cli import main

    storage = tmp_path / "r"
    argv = ["--mode", mode, "--init", "scratch", "--context", "60", "--storage", str(storage)]
    code = main("toto", argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "context_length 60 must be a positive multiple of Toto's patch size 16" in err
    assert not storage.exists()


def test_all_models_refuse_a_context_one_model_cannot_read_before_any_sweep(tmp_path, capsys):
    from sweeps import all as runner

    storage = tmp_path / "r"
    argv = ["--models", "tft,toto", "--init", "scratch", "--context", "60", "--storage", str(storage)]
    assert runner.main(argv) == 2
    err = capsys.readouterr().err
    assert "toto: context_length 60 must be a positive multiple of Toto's patch size 16" in err, err
    assert len(err.strip().splitlines()) == 1 and not storage.exists()  # tft's sweep never started


def test_a_kronos_context_beyond_the_predictors_window_is_refused_at_the_door(tmp_path, capsys):
    from sweeps.cli import main

    code = main("kronos", ["--init", "scratch", "--context", "600", "--storage", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "bad context_length=600 (this model's max context is 512)" in err, err
    assert not (tmp_path / "r").exists()


def test_toto_config_error_reads_the_patch_of_the_weights_the_config_names():
    from search_spaces import toto

    assert toto.config_error({"init": "scratch", "size": "tiny", "context_length": 48}) is None  # patch 16
    assert "patch size 64" in toto.config_error({"init": "scratch", "size": "small", "context_length": 48})
    assert "patch size 64" in toto.config_error({"init": "pretrained", "context_length": 96})
    assert toto.config_error({"context_length": 512}) is None  # the baseline: the released model
    assert toto.config_error({"init": "scratch", "context_length": 0}) is not None


def test_horizon_fixes_every_configuration_of_every_mode():
    from search_spaces import strategies, toto

    fixed = {"prediction_length": 8}
    configs = strategies.configurations("priority", toto, toto.BASELINE, {}, None, fixed)
    assert {c["prediction_length"] for c in configs} == {8}  # PRIORITY lists a 128-step point
    search = strategies.build("optuna", toto, toto.BASELINE, fixed=fixed)
    assert search.param_space["prediction_length"] == 8


def _returns_file(tmp_path) -> str:
    from conftest import synthetic_prices

    frame = synthetic_prices(600)
    frame["close"] = np.log(frame["close"]).diff().fillna(0.0)  # a log-return series: half its values < 0
    path = tmp_path / "returns.parquet"
    frame.to_parquet(path)
    return str(path)


def test_non_positive_target_is_refused_for_pct_metrics(tmp_path, capsys):
    data = _returns_file(tmp_path)
    code, err = _main(["--data", data, "--storage", str(tmp_path / "r")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "target column 'close' has" in err and "value(s) ≤ 0 (first on 2015-01-01)" in err
    assert "--metric val_rel_mae or val_mae" in err
    code, err = _main(["--data", data, "--metric", "val_sharpe", "--storage", str(tmp_path / "r")], capsys)
    assert code == 2 and "val_sharpe divides by prices" in err
    assert not (tmp_path / "r").exists()
