"""Sweep several models in turn on the same data, folds and seeds, then compare them.

    python sweeps/all.py --models toto,kronos,chronos2,tft --mode priority
    python sweeps/all.py --models tft,chronos2 --mode quick --folds 3 --seeds 3 --name cmp

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
    p.add_argument("--models", default=",".join(registry.MODELS), help="comma list of models to sweep in turn")
    p.add_argument("--name", help="prefix of the sweep names (X_<model>)")
    p.add_argument("-h", "--help", action="store_true")
    own, rest = p.parse_known_args(argv)
    if own.help:
        p.print_help()
        print("\nAll other flags are those of sweeps/<model>.py (see python sweeps/tft.py --help).")
        raise SystemExit(0)
    models = [m.strip() for m in own.models.split(",") if m.strip()]
    return models, own, rest


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

    argv = list(rest)
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
    return [*argv, "--name", f"{own.name}_{model}"] if own.name else argv


def _specs(models: list[str], argvs: dict[str, list[str]]) -> dict[str, SweepSpec]:
    """Each model's checked spec, before anything runs; SpecError names the model and the problem."""
    specs = {}
    for model in models:
        entry = registry.get(model)
        if importlib.util.find_spec(entry.package) is None:
            raise SpecError(f"{model}: package {entry.package!r} is not installed ({entry.install_hint})")
        args = cli.parser(model).parse_args(argvs[model])
        try:
            specs[model] = cli.resumed_spec(model, args) if args.resume else cli.spec_from_args(model, args)
            # The data, folds, weights and configurations, as the model's own run checks them (and
            # prints its warnings then, not twice).
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                driver.prepare(specs[model])
        except (SpecError, DataError, FoldError, WeightsNotFound) as exc:
            raise SpecError(f"{model}: {exc}") from None
        spec = specs[model]
        if not spec.resume and not spec.overwrite and store.exists(spec.sweep_dir):
            raise SpecError(f"{model}: sweep {spec.sweep_dir!r} already exists: use --resume, --overwrite or --name")
    if len({s.name for s in specs.values()}) < len(specs):
        raise SpecError("two models would write the same sweep name: give --name PREFIX")
    return specs


def comparison_text(compare, metric: str) -> str:
    """The models side by side, winner first."""
    from analysis.text import fmt

    test = "test_" + metric.removeprefix("val_")
    lines = [
        f"rank  model     {metric} (mean ± std)  robust  {test}  rel_mae(test)  vs naive (test)  MCS  units  status  sweep"
    ]
    for _, r in compare.iterrows():
        mcs = {True: "yes", False: "no"}.get(r.get("in_mcs"), "-")
        lines.append(
            f"{r['rank']:>4}  {r['model']:<8}  {fmt(r.get(metric))} ± {fmt(r.get(metric + '_std'))}  "
            f"{fmt(r['robust_score'])}  {fmt(r.get(test))}  {fmt(r.get('test_rel_mae'))}  "
            f"{r.get('verdict', 'untested')}  {mcs}  {r['units_compared']}  {r['status']}  {r['sweeps']}"
        )
    ok = compare[compare["status"] == "ok"]
    lines.append(f"Winner: {ok.iloc[0]['model']} ({ok.iloc[0]['config_id']})" if not ok.empty else "No winner.")
    return "\n".join(lines)


def compare_sweeps(storage: str, names: list[str], metric: str, label: str) -> str:
    """Write the cross-model comparison of these sweeps; returns the text to print."""
    from analysis import files
    from analysis.results import Results

    res = Results(storage, sweeps=names)
    compare = res.compare(metric=metric)
    out = files.join(storage, f"comparison_{label}")
    files.write_text(files.join(out, "model_comparison.csv"), compare.to_csv(index=False))
    files.write_text(files.join(out, "model_comparison.json"), store.dumps(compare.to_dict(orient="records")))
    res.report(files.join(out, "report.md"), metric=metric)
    left = [f"  left out (another horizon): {line}" for line in compare.attrs.get("left_out") or []]
    head = (
        f"\nModels compared at a horizon of {compare.attrs.get('horizon')} step(s) on "
        f"{compare.attrs.get('units_compared')} shared folds × seeds:"
    )
    return "\n".join([head, *left, comparison_text(compare, metric), f"Comparison:   {out}"])


def main(argv: list[str] | None = None) -> int:
    models, own, rest = _split(argv)
    with tempfile.TemporaryDirectory() as workdir:
        try:
            if not models:
                raise SpecError("--models is empty")
            unknown = [m for m in models if m not in registry.MODELS]
            if unknown:
                raise SpecError(f"--models: unknown model {unknown[0]!r} (known: {', '.join(registry.MODELS)})")
            argvs = {m: model_argv(m, own, rest, workdir) for m in models}
            specs = _specs(models, argvs)
        except SpecError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        codes = {}
        for model in models:
            print(f"\n=== {model}: sweep {specs[model].name} ===", flush=True)
            codes[model] = cli.main(model, argvs[model])
    done = [specs[m].name for m in models if codes[m] == 0]
    first = specs[models[0]]
    if done:
        print(compare_sweeps(first.storage, done, first.metric, own.name or first.mode))
    failed = [m for m in models if codes[m] != 0]
    if failed:
        print(f"Sweeps that did not finish: {', '.join(failed)}", file=sys.stderr)
    return 0 if not failed else 1


if __name__ == "__main__":
    cli.exit_now(main())
