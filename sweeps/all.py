"""Sweep several models in turn on the same data, folds and seeds, then compare them.

    python sweeps/all.py --models toto,kronos,chronos2,tft --mode priority
    python sweeps/all.py --models tft,chronos2 --mode quick --folds 3 --seeds 3 --name cmp

The baselines (random walk, drift, historical mean, AutoARIMA, AutoETS, AutoTheta: sweeps/baselines.py)
run first on the same data, folds, seeds and horizon, all six whatever the mode (`--no-baselines`
skips them); the comparison then says whether each model beats the best of them (chosen on val).

Every other flag goes to each `sweeps/<model>.py`, except the weight flags (--pretrained,
--tokenizer, --init, --size), which go only to the models that have that setting. `--config FILE`
is either one sweep file for every model or an object with one sweep file per model
({"tft": {...}, "chronos2": {...}}). `--name X` names the sweeps X_<model> (default
<model>_<mode>). Every model's flags, data, folds, weights and configurations are checked before
the first sweep starts. The comparison (each model's best configuration on the folds × seeds all
share, the winner first) is printed and written to <storage>/comparison_<name or mode>/.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import contextlib
import importlib.util
import io
import json
import os
import tempfile

from sweeps import cli, driver
from sweeps.spec import SpecError, SweepSpec
from trainables import registry, store
from trainables.data import DataError
from trainables.folds import FoldError
from trainables.weights import WeightsNotFound

WEIGHT_FLAGS = ("--pretrained", "--tokenizer", "--init", "--size")


def _split(argv: list[str] | None) -> tuple[list[str], argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        prog="python sweeps/all.py", description=__doc__.split("\n")[0], add_help=False, allow_abbrev=False
    )
    p.add_argument("--models", default=",".join(forecasters()), help="comma list of models to sweep in turn")
    p.add_argument("--name", help="prefix of the sweep names (X_<model>)")
    p.add_argument("--no-baselines", action="store_true", help="do not run the baselines sweep first")
    # `sweeps/<model>.py --baselines --name X`: the model's sweep keeps the name X (baselines: X_baselines).
    p.add_argument("--exact-name", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-h", "--help", action="store_true")
    own, rest = p.parse_known_args(argv)
    if own.help:
        p.print_help()
        print("\nAll other flags are those of sweeps/<model>.py (see python sweeps/tft.py --help).")
        raise SystemExit(0)
    models = [m.strip() for m in own.models.split(",") if m.strip()]
    return models, own, rest


def forecasters() -> list[str]:
    """The registry's models that are not baselines."""
    return [name for name, entry in registry.MODELS.items() if not entry.baseline]


BASELINES = next((name for name, entry in registry.MODELS.items() if entry.baseline), None)
# What shapes a model's configurations: the baselines sweep runs all of its own (every method) instead.
NOT_FOR_BASELINES = ("--mode", "--max-runs", "--num-samples", "--configs", "--scheduler", "--horizon", "--name")


def baselines_argv(rest: list[str], own: argparse.Namespace, mode: str, horizon: int, several: bool) -> list[str]:
    """The flags of the baselines sweep: the models' data, folds, seeds, storage and resources, every
    baseline method (grid) at the models' horizon, its own name."""
    argv = list(rest)
    for flag in (*NOT_FOR_BASELINES, *WEIGHT_FLAGS):
        argv, _ = _without(argv, flag)
    name = f"{own.name}_{BASELINES}" if own.name else f"{BASELINES}_{mode}"
    return [*argv, "--mode", "grid", "--horizon", str(horizon), "--name", f"{name}_h{horizon}" if several else name]


def horizon_of(spec: SweepSpec) -> int:
    """The steps a model's sweep forecasts (its --horizon, else its baseline configuration's)."""
    entry = registry.get(spec.model)
    return int(spec.horizon or spec.baseline(entry.spaces().BASELINE)[entry.horizon_key])


def _without(argv: list[str], flag: str) -> tuple[list[str], str | None]:
    """argv without `flag` (as `--flag v` or `--flag=v`), and the flag's value."""
    out, value, skip = [], None, False
    for i, token in enumerate(argv):
        if skip:
            skip = False
        elif token == flag:
            value, skip = (argv[i + 1] if i + 1 < len(argv) else None), True
        elif token.startswith(flag + "="):
            value = token.split("=", 1)[1]
        else:
            out.append(token)
    return out, value


def _per_model_config(path: str) -> dict | None:
    """The sections of a config file keyed by model name, or None for an ordinary sweep file."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None  # the sweep CLI reports it
    if isinstance(raw, dict) and raw and set(raw) <= set(registry.MODELS):
        return raw
    return None


def model_argv(model: str, own: argparse.Namespace, rest: list[str], workdir: str) -> list[str]:
    """The flags for `sweeps/<model>.py`: weight flags it has, its own config section, its name."""
    from analysis.impact import model_baseline

    argv = _univariate(model, list(rest), workdir)
    baseline = model_baseline(model) or {}
    for flag in WEIGHT_FLAGS:
        if flag.removeprefix("--") not in baseline:
            argv, _ = _without(argv, flag)
    argv, config = _without(argv, "--config")
    sections = _per_model_config(config) if config else None
    if sections is not None:
        config = None
        if model in sections:
            config = os.path.join(workdir, f"{model}.json")
            with open(config, "w") as f:
                json.dump(sections[model], f)
    argv += ["--config", config] if config else []
    if not own.name:
        return argv
    return [*argv, "--name", own.name if getattr(own, "exact_name", False) else f"{own.name}_{model}"]


def _univariate(model: str, argv: list[str], workdir: str) -> list[str]:
    """`argv` for a model that takes no covariates (Kronos, the baselines): without --covariates and a
    sweep file's covariates, so the others' covariates do not stop it (a note says so)."""
    reason = registry.get(model).no_covariates
    if not reason:
        return argv
    argv, given = _without(argv, "--covariates")
    rest, path = _without(argv, "--config")
    raw = _read_json(path) if path and _per_model_config(path) is None else None
    if isinstance(raw, dict) and "covariates" in raw:
        raw = {k: v for k, v in raw.items() if k != "covariates"}
        for section in ("param_ranges", "training_config"):
            if isinstance(raw.get(section), dict):
                raw[section] = {k: v for k, v in raw[section].items() if k != "covariates"}
        path = os.path.join(workdir, f"{model}_univariate.json")
        with open(path, "w") as f:
            json.dump(raw, f)
        argv, given = [*rest, "--config", path], given or "the sweep file's"
    if given and model != BASELINES:  # the baselines are univariate by design: nothing to note
        print(f"note: {model} takes no covariates ({reason}): its sweep runs without them", file=sys.stderr)
    return argv


def _read_json(path: str) -> object:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None  # the model's own check reports it


def _specs(runs: dict[str, tuple[str, list[str]]]) -> dict[str, SweepSpec]:
    """Each run's checked spec (run → (model, argv)), before anything runs; SpecError names the
    model and the problem."""
    specs = {}
    for key, (model, argv) in runs.items():
        entry = registry.get(model)
        if importlib.util.find_spec(entry.package) is None:
            raise SpecError(f"{model}: package {entry.package!r} is not installed ({entry.install_hint})")
        args = cli.parser(model).parse_args(argv)
        try:
            specs[key] = cli.resumed_spec(model, args) if args.resume else cli.spec_from_args(model, args)
            # The data, folds, weights and configurations, as the model's own run checks them (and
            # prints its warnings then, not twice).
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                driver.prepare(specs[key])
        except (SpecError, DataError, FoldError, WeightsNotFound) as exc:
            raise SpecError(f"{model}: {exc}") from None
        spec = specs[key]
        if not spec.resume and not spec.overwrite and store.exists(spec.sweep_dir):
            raise SpecError(f"{model}: sweep {spec.sweep_dir!r} already exists: use --resume, --overwrite or --name")
    if len({s.name for s in specs.values()}) < len(specs):
        raise SpecError("two models would write the same sweep name: give --name PREFIX")
    return specs


# What a sweep file says about the models' configurations: not the baselines' (their methods are fixed).
MODEL_ONLY = ("training_config", "param_ranges", "name")


def _shared_config(rest: list[str], workdir: str) -> list[str]:
    """`rest` with a one-for-every-model sweep file reduced to what the baselines share with the
    models (folds, seeds, features, assets, …); a per-model file is left for model_argv."""
    argv, path = _without(rest, "--config")
    if not path or _per_model_config(path) is not None:
        return rest
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError):
        return rest  # the models' own check reports it
    shared = os.path.join(workdir, "baselines_shared.json")
    with open(shared, "w") as f:
        json.dump({k: v for k, v in raw.items() if k not in MODEL_ONLY}, f)
    return [*argv, "--config", shared]


def baselines_runs(specs: dict[str, SweepSpec], own, rest: list[str], workdir: str) -> dict[str, tuple[str, list[str]]]:
    """The baselines sweep(s), run first: one per horizon the models forecast (one in the usual case)."""
    horizons = sorted({horizon_of(spec) for spec in specs.values()})
    mode = next(iter(specs.values())).mode
    base = model_argv(BASELINES, argparse.Namespace(name=None), _shared_config(rest, workdir), workdir)
    return {f"{BASELINES}@{h}": (BASELINES, baselines_argv(base, own, mode, h, len(horizons) > 1)) for h in horizons}


def comparison_text(compare, metric: str) -> str:
    """The models side by side, winner first."""
    from analysis.text import fmt

    test = "test_" + metric.removeprefix("val_")
    lines = [
        f"rank  model                {metric} (mean ± std)  robust  {test}  rel_mae(test)  vs naive (test)  MCS  "
        "vs the best baseline (test)  units  status  sweep"
    ]
    for _, r in compare.iterrows():
        mcs = {True: "yes", False: "no"}.get(r.get("in_mcs"), "-")
        lines.append(
            f"{r['rank']:>4}  {r.get('name', r['model']):<19}  {fmt(r.get(metric))} ± {fmt(r.get(metric + '_std'))}  "
            f"{fmt(r['robust_score'])}  {fmt(r.get(test))}  {fmt(r.get('test_rel_mae'))}  "
            f"{r.get('verdict', 'untested')}  {mcs}  {r.get('versus_bar', '-')}  {r['units_compared']}  {r['status']}  "
            f"{r['sweeps']}"
        )
    ok = compare[compare["status"] == "ok"]
    if ok.empty:
        lines.append("No winner.")
    else:
        top = ok.iloc[0]
        lines.append(f"Winner: {top.get('name', top['model'])} ({top['config_id']}): {top.get('versus_bar', '')}")
    return "\n".join(lines)


def compare_sweeps(storage: str, names: list[str], metric: str, label: str) -> str:
    """Write the cross-model comparison of these sweeps; returns the text to print."""
    from analysis.results import Results
    from trainables import layout, store

    res = Results(storage, sweeps=names)
    compare = res.compare(metric=metric)
    out = layout.comparison_dir(storage, label)
    store.write_text(store.join(out, layout.COMPARISON_CSV), compare.to_csv(index=False))
    store.write_json(store.join(out, layout.COMPARISON_JSON), compare.to_dict(orient="records"))
    res.report(store.join(out, layout.REPORT), metric=metric)
    left = [f"  left out (another horizon): {line}" for line in compare.attrs.get("left_out") or []]
    head = (
        f"\nModels compared at a horizon of {compare.attrs.get('horizon')} step(s) on "
        f"{compare.attrs.get('units_compared')} shared folds × seeds:"
    )
    from analysis.text import verdict_text

    judged = [verdict_text(compare.attrs["verdicts"])] if compare.attrs.get("verdicts") else []
    return "\n".join([head, *left, comparison_text(compare, metric), *judged, f"Comparison:   {out}"])


@contextlib.contextmanager
def _one_ray(spec: SweepSpec, dry: bool):
    """One Ray instance (or connection) for every sweep of the run: each would otherwise start and
    stop its own (~5 s each here), which would be most of the baselines sweep's time."""
    if dry:
        yield
        return
    import ray

    if not spec.verbose:
        driver.quiet_ray()
    ours = driver.init_ray(spec.address, spec.verbose)
    try:
        yield
    finally:
        if ours:
            ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    models, own, rest = _split(argv)
    with tempfile.TemporaryDirectory() as workdir:
        try:
            if not models:
                raise SpecError("--models is empty")
            unknown = [m for m in models if m not in registry.MODELS]
            if unknown:
                raise SpecError(f"--models: unknown model {unknown[0]!r} (known: {', '.join(registry.MODELS)})")
            runs = {m: (m, model_argv(m, own, rest, workdir)) for m in models}
            specs = _specs(runs)
            if BASELINES and not own.no_baselines and BASELINES not in models:
                extra = baselines_runs(specs, own, rest, workdir)
                specs = {**_specs(extra), **specs}
                runs = {**extra, **runs}
        except SpecError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        codes = {}
        with _one_ray(next(iter(specs.values())), "--dry-run" in rest):
            for key, (model, argv) in runs.items():
                print(f"\n=== {model}: sweep {specs[key].name} ===", flush=True)
                codes[key] = cli.main(model, argv)
    if "--dry-run" in rest:  # each sweep printed what it would run; nothing to compare
        return max(codes.values())
    done = [specs[k].name for k in runs if codes[k] == 0]
    first = specs[next(iter(runs))]
    if any(codes[m] == 0 for m in models):
        print(compare_sweeps(first.storage, done, specs[models[0]].metric, own.name or specs[models[0]].mode))
    failed = [specs[k].name for k in runs if codes[k] != 0]
    if failed:
        print(f"Sweeps that did not finish: {', '.join(failed)}", file=sys.stderr)
    return 0 if not failed else 1


if __name__ == "__main__":
    cli.exit_now(main())
