"""Search spaces are data; strategy builders turn them into Tune searches."""

import subprocess
import sys

import pytest

from search_spaces import domains, strategies
from trainables import registry

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
BASE = {"a": 1, "b": 0.1, "c": "x"}


def test_grid_is_the_full_product_on_the_baseline():
    configs = strategies.grid(BASE, {"a": [1, 2, 3], "b": [0.1, 0.2]})
    assert len(configs) == 6
    assert all(c["c"] == "x" for c in configs)


def test_ofat_moves_one_factor_at_a_time():
    configs = strategies.ofat(BASE, {"a": [1, 2, 3], "b": [0.5]})
    assert configs[0] == BASE
    assert configs[1:] == [{**BASE, "a": 2}, {**BASE, "a": 3}, {**BASE, "b": 0.5}]


def test_priority_fills_the_baseline_and_drops_duplicates():
    configs = strategies.priority(BASE, [{}, {"a": 5}, {"a": 5}])
    assert configs == [BASE, {**BASE, "a": 5}]


def test_max_runs_caps_every_explicit_mode():
    spaces = registry.get("tft").spaces()
    for mode in ("grid", "quick", "full", "priority", "ofat"):
        search = strategies.build(mode, spaces, spaces.BASELINE, max_runs=2)
        assert search.num_samples == min(2, len(strategies.configurations(mode, spaces, spaces.BASELINE, {}, None)))


def test_optuna_search_uses_sqlite_and_a_concurrency_limit(tmp_path):
    from ray.tune.search import ConcurrencyLimiter

    spaces = registry.get("tft").spaces()
    db = tmp_path / "study.db"
    search = strategies.build(
        "optuna", spaces, spaces.BASELINE, num_samples=7, optuna_storage=str(db), max_concurrent=3
    )
    assert isinstance(search.algorithm, ConcurrencyLimiter) and search.algorithm.max_concurrent == 3
    assert search.num_samples == 7
    assert search.param_space["batch_size"] == spaces.BASELINE["batch_size"]
    search.algorithm.set_search_properties("robust_score", "min", search.param_space)
    assert db.exists()


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_every_space_is_consistent_with_its_baseline(name):
    spaces = registry.get(name).spaces()
    keys = set(spaces.BASELINE)
    for grid in (spaces.QUICK, spaces.GRID, spaces.FULL, spaces.PARAM_RANGES, spaces.OPTUNA):
        assert set(grid) <= keys
    for point in spaces.PRIORITY:
        assert set(point) <= keys
    for key, domain in spaces.OPTUNA.items():
        if isinstance(spaces.BASELINE[key], int) and not isinstance(domain, domains.Choice):
            assert isinstance(domain, domains.Integer), f"{key} is an int: use an integer domain"
    for key in {**spaces.TINY, **getattr(spaces, "ZERO_SHOT", {})}:
        assert key in keys, f"TINY/ZERO_SHOT sets {key!r}, which the baseline lacks"


def test_search_space_modules_import_without_ray():
    """Analysis and validation read the spaces as data; a Ray import there would cost seconds."""
    names = [registry.get(m).space_module for m in registry.MODELS]
    code = f"import sys; import {', '.join(names)}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_optuna_domains_become_the_same_tune_domains():
    from ray import tune

    assert domains.to_tune(domains.qrandint(20, 120, 10)).upper == 120
    assert isinstance(domains.to_tune(domains.loguniform(1e-4, 1e-2)).sampler, tune.search.sample.LogUniform)
    assert domains.to_tune(domains.choice([1, 2])).categories == [1, 2]
    assert domains.largest(domains.choice([128, 512, 256])) == 512


def test_preparing_a_sweep_does_not_import_torch():
    """The driver reads ASHA's clock (planned steps) from the space modules, never the adapters."""
    code = (
        "import sys; from sweeps.cli import parser, spec_from_args; from sweeps.driver import prepare; "
        "args = parser('tft').parse_args(['--mode', 'quick', '--scheduler', 'asha', '--storage', '/tmp/nope_torch']); "
        "p = prepare(spec_from_args('tft', args)); assert p.unit_steps == 120, p.unit_steps; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
