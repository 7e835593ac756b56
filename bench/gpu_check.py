"""GPU check: each foundation model's fine-tune + predict on one CUDA GPU, 1, 2 and 4 trials packed.

For every foundation model in the registry (the entries that load released weights) and every
packing k, k worker processes fine-tune and then predict side by side on the one GPU, as Tune packs
k trials at 1/k GPU each (one CPU thread each, as `--cpus-per-trial 1` gives). Per packing it
prints the median seconds per training step, fit and predict seconds, the peak GPU memory of one
process (torch.cuda.max_memory_allocated, the largest of the k), the GPU's mean utilisation while
all k train and the GPU memory in use (sampled with pynvml, else nvidia-smi), and the steps/s of
the whole GPU. The last line is a compact summary.

Weights: the released ones when they are in the local Hugging Face cache (never downloaded);
otherwise a randomly initialised model of the same architecture at the adapters' largest scratch
size, "small", which is smaller than the released model (each row says which). Precision is the
adapters' own: all three train under bf16 autocast on a bf16-capable GPU; Toto and Chronos-2
predict in float32, Kronos in bf16.

    python bench/gpu_check.py [--models toto,chronos2,kronos] [--steps 20] [--packings 1,2,4]

Without a CUDA device it prints one `error:` line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path[0] = str(ROOT)  # the repository, not bench/, first

SCRATCH_SIZE = "small"  # the adapters' largest randomly initialised size
# Rows of the embedded S&P 500 series (train, val, test), counted back from its end. No val rows:
# no periodic validation inside the timed steps (a real unit's evaluations are not timed here).
ROWS = (1200, 0, 150)
RESULT = "GPU_CHECK_RESULT "  # prefix of a worker's one result line on stdout
WORKER_TIMEOUT_S = 900


# --------------------------------------------------------------------------- models and weights


def baseline(model: str) -> dict[str, Any]:
    from trainables import registry

    return dict(registry.get(model).spaces().BASELINE)


def foundation_models() -> list[str]:
    """Registry entries whose baseline loads released weights, in registry order."""
    from trainables import registry

    return [name for name in registry.MODELS if registry.pretrained(name)]


def in_local_cache(ref: str) -> bool:
    """Whether weights `ref` (a directory or a hub id) are on this machine, without any network."""
    if os.path.isdir(ref):
        return True
    if ref.count("/") != 1:
        return False
    from huggingface_hub import try_to_load_from_cache

    return all(isinstance(try_to_load_from_cache(ref, f), str) for f in ("config.json", "model.safetensors"))


def gpu_config(model: str) -> tuple[dict[str, Any], str]:
    """The model's baseline configuration for this machine and a label saying which weights."""
    from trainables import registry

    config = baseline(model)
    refs = [str(config[k]) for k in registry.get(model).weight_keys]
    if all(in_local_cache(r) for r in refs):
        return {**config, "init": "pretrained"}, "real " + "+".join(os.path.basename(r.rstrip("/")) for r in refs)
    return {**config, "init": "scratch", "size": SCRATCH_SIZE}, f"random {SCRATCH_SIZE} (released not cached)"


# --------------------------------------------------------------------------------- one worker


def _wait_for_peers(barrier: str | None, peers: int) -> None:
    """Start fitting only when every packed worker has imported and is ready."""
    if not barrier:
        return
    Path(barrier, str(os.getpid())).touch()
    deadline = time.time() + WORKER_TIMEOUT_S
    while len(os.listdir(barrier)) < peers and time.time() < deadline:
        time.sleep(0.05)


def _step_times(log_dir: str) -> list[float]:
    """Wall times of the per-step training-loss events (the most frequent train loss tag)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = [t for t in acc.Tags()["scalars"] if "train" in t and "loss" in t]
    if not tags:
        return []
    return [e.wall_time for e in acc.Scalars(max(tags, key=lambda t: len(acc.Scalars(t))))]


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit (and predict) one model as `spec` says; seconds per step from the loss events' gaps."""
    import resource

    import numpy as np
    import torch

    from trainables import registry
    from trainables.adapter import UnitData, Window
    from trainables.data import load_prices
    from trainables.features import add_features

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    frame, feats = add_features(load_prices(None, "SPX"), "BASELINE_FEATURES")
    n, (train, val, test) = len(frame), spec["rows"]
    t0 = n - train - val - test
    data = UnitData(
        frame,
        feats,
        Window(t0, t0 + train),
        Window(t0 + train, t0 + train + val),
        Window(n - test, n),
    )
    model = spec["model"]
    config = {**spec["config"], registry.get(model).steps_key: int(spec["steps"])}
    adapter = registry.get(model).adapter()(config, seed=0, device=spec["device"])
    cuda = spec["device"].startswith("cuda")
    if cuda:
        torch.cuda.init()
    _wait_for_peers(spec.get("barrier"), int(spec.get("peers", 1)))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as logs:
        start = time.time()
        adapter.fit(data, logs)
        out["fit_s"] = time.time() - start
        times = _step_times(logs)
    if len(times) < 2:
        raise RuntimeError(f"{model}: fewer than two training-loss events logged (steps={spec['steps']})")
    # Median gap between loss events = one step, whatever set-up and loading cost around them.
    out.update(per_step=float(np.median(np.diff(times))), first_step=times[0], last_step=times[-1])
    if spec.get("predict"):
        horizon = adapter.horizon(adapter.config)
        origins = np.arange(data.test.start, data.test.stop - horizon + 1, horizon)
        start = time.time()
        adapter.predict(data, origins)
        out.update(predict_s=time.time() - start, origins=len(origins))
    if cuda:
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _worker_main(spec_json: str) -> int:
    try:
        result = run_worker(json.loads(spec_json))
    except Exception as exc:  # reported as the packing's error, one line
        result = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    print(RESULT + json.dumps(result), flush=True)
    return 1 if "error" in result else 0


def run_workers(specs: list[dict[str, Any]], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run one worker process per spec side by side; their results (or {"error": ...}) in order."""
    with tempfile.TemporaryDirectory(prefix="gpu_check_run_") as tmp:
        barrier = os.path.join(tmp, "barrier")
        os.mkdir(barrier)
        procs = []
        for i, spec in enumerate(specs):
            spec = {**spec, "barrier": barrier, "peers": len(specs)}
            # Files, not pipes: a worker blocked on a full pipe would stall its peers at the barrier.
            out, err = open(os.path.join(tmp, f"{i}.out"), "w+"), open(os.path.join(tmp, f"{i}.err"), "w+")
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
            procs.append((subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT), out, err))
        results = []
        for proc, out, err in procs:
            try:
                proc.wait(timeout=WORKER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            results.append(_read_result(out, err, proc.returncode))
            out.close()
            err.close()
    return results


def _read_result(out, err, returncode: int) -> dict[str, Any]:
    out.seek(0)
    for line in reversed(out.read().splitlines()):
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    err.seek(0)
    lines = [line for line in err.read().splitlines() if line.strip()]
    return {"error": lines[-1][:300] if lines else f"worker exited with {returncode}"}


# ------------------------------------------------------------------------ GPU utilisation


class GpuSampler(threading.Thread):
    """Samples (time, utilisation %, memory used MB) of one GPU every `interval` seconds."""

    def __init__(self, index: int = 0, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.index, self.interval = index, interval
        self.samples: list[tuple[float, float, float]] = []
        self._stop_event = threading.Event()
        self.reader, self.source = self._nvml() or self._smi()

    def _nvml(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            pynvml.nvmlDeviceGetUtilizationRates(handle)
        except Exception:
            return None

        def read() -> tuple[float, float]:
            util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            return float(util), pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20

        return read, "pynvml"

    def _smi(self):
        query = ["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu,memory.used"]

        def read() -> tuple[float, float]:
            out = subprocess.run([*query, "--format=csv,noheader,nounits"], capture_output=True, text=True)
            util, mem = out.stdout.strip().splitlines()[0].split(",")
            return float(util), float(mem)

        return read, "nvidia-smi"

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.samples.append((time.time(), *self.reader()))
            except Exception:
                pass
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def mean_utilisation(samples: list[tuple[float, float, float]], spans: list[tuple[float, float]]) -> float | None:
    """Mean utilisation of the samples taken while all spans overlap (while any runs, if they
    overlap for less than two samples); None without samples."""
    if not samples or not spans:
        return None
    for lo, hi in (
        (max(s for s, _ in spans), min(e for _, e in spans)),
        (min(s for s, _ in spans), max(e for _, e in spans)),
    ):
        inside = [u for t, u, _ in samples if lo <= t <= hi]
        if len(inside) >= 2:
            return statistics.fmean(inside)
    return None


# ------------------------------------------------------------------------------------ driver


def cuda_problem() -> str | None:
    """Why there is no usable CUDA device (None if there is). Checks the driver before torch."""
    if shutil.which("nvidia-smi") is None and not os.path.exists("/dev/nvidia0"):
        return "no CUDA device on this machine (no nvidia-smi, no /dev/nvidia0)"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return "no CUDA device visible (CUDA_VISIBLE_DEVICES hides them all)"
    import torch

    if not torch.cuda.is_available():
        return f"no CUDA device visible to torch {torch.__version__} (a CPU-only build, or no driver)"
    return None


def packings_arg(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected trials per GPU such as 1,2,4, got {text!r}")
    return values


def _models_arg(text: str) -> list[str]:
    from trainables import registry

    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in registry.MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown model(s) {unknown} (known: {', '.join(registry.MODELS)})")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=_models_arg, help="comma-separated (default: every foundation model)")
    p.add_argument("--steps", type=int, default=20, help="fine-tuning steps per fit (default 20)")
    p.add_argument("--packings", type=packings_arg, default=[1, 2, 4], help="trials per GPU (default 1,2,4)")
    p.add_argument("--cpus-per-trial", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


HEADER = (
    f"{'model':<9} {'weights':<40} {'trials':>6} {'GPU/trial':>9} {'s/step':>7} {'fit s':>6} {'pred s':>6} "
    f"{'peak MB':>8} {'util %':>6} {'GPU MB':>7} {'steps/s':>7}"
)


def check_packing(model: str, config: dict, steps: int, k: int, threads: int, env: dict) -> dict:
    """k workers side by side; one row of figures (or an error)."""
    spec = {"model": model, "config": config, "steps": steps, "device": "cuda", "rows": ROWS,
            "predict": True, "threads": threads}  # fmt: skip
    sampler = GpuSampler(_gpu_index())
    sampler.start()
    try:
        runs = run_workers([spec] * k, env)
    finally:
        sampler.stop()
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return {"error": errors[0], "source": sampler.source}
    per_step = [r["per_step"] for r in runs]
    return {
        "per_step": statistics.median(per_step),
        "fit_s": max(r["fit_s"] for r in runs),
        "predict_s": max(r["predict_s"] for r in runs),
        "peak_mb": max(r["peak_gpu_mb"] for r in runs),
        "util": mean_utilisation(sampler.samples, [(r["first_step"], r["last_step"]) for r in runs]),
        "gpu_mb": max((m for _, _, m in sampler.samples), default=None),
        "steps_per_s": sum(1 / s for s in per_step),
        "source": sampler.source,
    }


def _gpu_index() -> int:
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    return int(first) if first.isdigit() else 0


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.worker:
        return _worker_main(a.worker)
    problem = cuda_problem()
    if problem:
        print(f"error: gpu_check needs a CUDA GPU: {problem}", file=sys.stderr)
        return 2
    import torch

    models = a.models or foundation_models()
    no_steps = [m for m in models if m not in foundation_models()]
    if no_steps:
        known = ", ".join(foundation_models())
        print(f"error: gpu_check times foundation models only ({known}), not {no_steps}", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    props = torch.cuda.get_device_properties(0)
    print(
        f"gpu_check: {props.name} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, "
        f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}; {a.steps} steps per fit, "
        f"{a.cpus_per_trial} CPU thread(s) per trial; baseline configurations (search_spaces/<model>.py)"
    )
    print(HEADER)
    summary, source = [], "n/a"
    for model in models:
        config, label = gpu_config(model)
        per_step = []
        for k in a.packings:
            r = check_packing(model, config, a.steps, k, a.cpus_per_trial, env)
            source = r["source"]
            share = f"{1 / k:.2f}".rstrip("0").rstrip(".")
            if "error" in r:
                print(f"{model:<9} {label:<40} {k:>6} {share:>9} error: {r['error']}")
                per_step.append("error")
                continue
            print(
                f"{model:<9} {label:<40} {k:>6} {share:>9} {r['per_step']:7.3f} {r['fit_s']:6.1f} "
                f"{r['predict_s']:6.1f} {r['peak_mb']:8.0f} {_fmt(r['util'], '6.0f')} {_fmt(r['gpu_mb'], '7.0f')} "
                f"{r['steps_per_s']:7.1f}",
                flush=True,
            )
            per_step.append(f"{r['per_step']:.3f}")
        summary.append(f"{model}={'/'.join(per_step)}")
    packs = "/".join(str(k) for k in a.packings)
    print(f"summary s/step at {packs} trials per GPU: {' '.join(summary)} (utilisation via {source})")
    return 1 if any("error" in s for s in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
