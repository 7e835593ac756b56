"""Serve an exported model (a model directory or a best_model.json) over HTTP with Ray Serve.

    python analysis/serve.py models/spx --port 8000                  # a local Ray, or --address of a cluster
    serve run analysis.serve:app model=models/spx                    # Serve's own CLI (an application builder)

    curl localhost:8000/healthz                                      # GET / or /healthz: the model card summary
    curl -X POST localhost:8000/forecast -H 'content-type: application/json' \\
         -d '{"prices": [{"timestamp": "2024-01-02", "close": 4742.8, "open": 4745.2, ...}, ...], "horizon": 5}'

POST / or /forecast takes the prices as records (`[{"timestamp": …, "close": …}, …]`) or columns
(`{"timestamp": […], "close": […]}`), named as the model's data was (matched without case), with an
optional `horizon` (default the model's) and `asset`. It answers `{"model", "horizon", "forecast"}`,
`forecast` the records of analysis/forecast.py's table (timestamp as ISO text, step, point, q…): the
same `Forecaster.forecast` as the command line. Bad input is HTTP 400 `{"error": "<one line>"}`.

Each replica loads the model once (its path must be readable from the replica's node: a local path on
one machine, s3://… on a cluster) and answers one request at a time per replica (`--replicas` for more).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if __name__ == "__main__":
    sys.path[0] = ROOT

import argparse
import asyncio
import json
import signal
from typing import Any

import pandas as pd
from ray import serve

from analysis.forecast import Forecaster, ForecastError, ModelSourceError, load_model
from analysis.runs import ResultsError
from trainables.data import DataError

FORECAST_PATHS = ("/", "/forecast")
HEALTH_PATHS = ("/", "/healthz")


def records(table: pd.DataFrame) -> list[dict]:
    """The forecast table as JSON records (timestamps as ISO 8601 text)."""
    out = table.copy()
    out["timestamp"] = [t.isoformat() for t in pd.DatetimeIndex(out["timestamp"])]
    return out.to_dict(orient="records")  # Python floats: JSON keeps every digit


def answer(model: Forecaster, payload: Any) -> dict:
    """The reply to one forecast request (a parsed JSON body); ForecastError for bad input."""
    if not isinstance(payload, dict):
        raise ForecastError('the request body must be a JSON object: {"prices": [...], "horizon": H}')
    unknown = sorted(set(payload) - {"prices", "horizon", "asset"})
    if unknown:
        raise ForecastError(f"unknown request field(s) {', '.join(unknown)} (expected prices, horizon, asset)")
    prices = payload.get("prices")
    if isinstance(prices, list) and prices and all(isinstance(r, dict) for r in prices):
        frame = pd.DataFrame.from_records(prices)
    elif isinstance(prices, dict) and prices and all(isinstance(v, list) for v in prices.values()):
        if len({len(v) for v in prices.values()}) > 1:
            raise ForecastError("prices as columns must all have the same length")
        frame = pd.DataFrame(prices)
    else:
        raise ForecastError("prices must be a non-empty list of rows or an object of equally long columns")
    horizon = payload.get("horizon")
    table = model.forecast(frame, horizon, asset=payload.get("asset"))
    return {"model": model.model_name, "horizon": len(table), "forecast": records(table)}


@serve.deployment(ray_actor_options={"num_cpus": 1})
class ForecastDeployment:
    """One replica: the model loaded once, answering GET (summary) and POST (forecast)."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        self.model = load_model(model, device)
        self.card = self.model.summary()
        self.lock = asyncio.Lock()  # torch models: one forecast at a time in a replica

    async def __call__(self, request) -> Any:
        from starlette.responses import JSONResponse

        path = "/" + request.url.path.strip("/") if request.url.path.strip("/") else "/"
        if request.method == "GET" and path in HEALTH_PATHS:
            return JSONResponse({"status": "ok", **self.card})
        if request.method != "POST" or path not in FORECAST_PATHS:
            allowed = "GET / or /healthz, POST / or /forecast"
            return JSONResponse({"error": f"{request.method} {path}: not a route ({allowed})"}, status_code=404)
        try:
            payload = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return JSONResponse({"error": f"the request body is not JSON: {exc}".splitlines()[0]}, status_code=400)
        try:
            async with self.lock:
                reply = await asyncio.to_thread(answer, self.model, payload)
        except (ForecastError, DataError) as exc:
            return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=400)
        return JSONResponse(reply)


def check_model(model: str) -> None:
    """ModelSourceError now, on the driver, for a path that is no model (before any replica starts)."""
    from analysis import model_dir
    from trainables import store

    if model_dir.is_model_dir(model):
        return
    text = store.maybe_read_text(model)
    try:
        record = json.loads(text) if text is not None else None
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict) or "checkpoint" not in record:
        raise ModelSourceError(f"{model!r} is neither a model directory (model.json) nor a best_model.json")


def build(model: str, device: str = "cpu", num_cpus: float = 1.0, replicas: int = 1):
    """The Serve application of `model` (bind it with serve.run, or `serve run analysis.serve:app`)."""
    check_model(model)
    options = {"ray_actor_options": {"num_cpus": float(num_cpus)}, "num_replicas": int(replicas)}
    return ForecastDeployment.options(**options).bind(model, device)


def app(args: dict[str, str]):
    """Serve's application builder: `serve run analysis.serve:app model=PATH [device=cpu num_cpus=1 replicas=1]`."""
    args = {k.lower(): v for k, v in args.items()}
    if "model" not in args:
        raise ValueError("serve run analysis.serve:app needs model=PATH (a model directory or best_model.json)")
    return build(args["model"], args.get("device", "cpu"), float(args.get("num_cpus", 1)),
                 int(args.get("replicas", 1)))  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python analysis/serve.py", description=__doc__.split("\n")[0])
    p.add_argument("model", help="a model directory (model.json) or a best_model.json")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1; 0.0.0.0 for every one)")
    p.add_argument(
        "--address", help="a running Ray cluster (auto: the one `ray start` began here; default: a new local Ray)"
    )
    p.add_argument("--name", default="forecast", help="the Serve application's name (forecast)")
    p.add_argument("--device", default="cpu", help="torch device of the replicas (cpu, cuda)")
    p.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per replica (1)")
    p.add_argument("--replicas", type=int, default=1, help="replicas (1)")
    return p


def _interrupt(signum, frame) -> None:  # noqa: ARG001 (a signal handler's signature)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    import ray

    args = parser().parse_args(argv)
    try:
        if not 0 < args.port < 65536:
            raise ForecastError(f"--port must be 1..65535, got {args.port}")
        # The deployment from the module, not this script's __main__: replicas import it by name.
        from analysis.serve import build as module_build

        application = module_build(args.model, args.device, args.num_cpus, args.replicas)
    except (ForecastError, ResultsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Replicas import analysis.*: the project on their path (a cluster needs it installed or a working_dir).
    ray.init(address=args.address or "local", runtime_env={"env_vars": {"PYTHONPATH": ROOT}})
    serve.start(http_options={"host": args.host, "port": args.port})
    print(f"serving {args.model} at http://{args.host}:{args.port}/ (POST /forecast, GET /healthz); Ctrl-C stops")
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl-C does: Serve shut down first
    try:
        serve.run(application, name=args.name, route_prefix="/", blocking=True)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
