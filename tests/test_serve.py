"""analysis/serve.py: the Ray Serve deployment answers HTTP with the same forecast as load_model(...).forecast."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
from conftest import free_port, synthetic_prices

from analysis.forecast import ForecastError, ModelSourceError, load_model
from trainables import quantiles

pytestmark = pytest.mark.slow


@pytest.fixture()
def model_path(tmp_path) -> str:
    """An AutoETS baseline (statsforecast, a real fitted model) in a model directory."""
    from test_forecast import fitted_dir

    return fitted_dir(tmp_path, "baselines", synthetic_prices(300))


def _call(url: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.usefixtures("ray_session")
def test_the_deployment_answers_with_the_python_forecast_and_400_for_bad_input(model_path):
    import ray
    from ray import serve

    from analysis.serve import app, build

    port = free_port()
    prices = synthetic_prices(300).iloc[:250]
    rows = prices.assign(timestamp=prices["timestamp"].dt.strftime("%Y-%m-%d"))
    rows = rows.rename(columns={"close": "Close", "open": "Open"})  # names matched without case, as from a file
    expected = load_model(model_path).forecast(prices, 2)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build(model_path, num_cpus=0.5), name="forecast_test", route_prefix="/")
        base = f"http://127.0.0.1:{port}"
        status, card = _call(f"{base}/healthz")
        assert status == 200 and card["status"] == "ok" and card["model"] == "baselines" and card["horizon"] == 2
        assert card["config"]["method"] == "auto_ets" and card["trained_on"]["rows"] == 300

        body = json.dumps({"prices": rows.to_dict(orient="records"), "horizon": 2}).encode()
        status, reply = _call(f"{base}/forecast", body)
        assert status == 200 and reply["model"] == "baselines" and reply["horizon"] == 2
        got = pd.DataFrame(reply["forecast"])
        assert list(got.columns) == ["timestamp", "step", "point", *quantiles.columns()]
        assert pd.to_datetime(got["timestamp"]).tolist() == expected["timestamp"].tolist()
        np.testing.assert_array_equal(got[["point", *quantiles.columns()]], expected[["point", *quantiles.columns()]])
        columnar = {"prices": {c: rows[c].tolist() for c in rows}}  # columns, and the default horizon
        assert _call(base, json.dumps(columnar).encode()) == (200, reply)

        too_long = json.dumps({"prices": rows.to_dict(orient="records"), "horizon": 3}).encode()
        assert _call(f"{base}/forecast", too_long) == (
            400,
            {"error": "horizon 3 is beyond what the model forecasts: 2 step(s) (its trained horizon)"},
        )
        short = json.dumps({"prices": rows.iloc[:10].to_dict(orient="records")}).encode()
        status, error = _call(f"{base}/forecast", short)
        assert status == 400 and "has 10 row(s): too few for the model" in error["error"]
        assert _call(f"{base}/forecast", b"{not json")[0] == 400
        assert _call(f"{base}/forecast", b'{"rows": []}') == (
            400,
            {"error": "unknown request field(s) rows (expected prices, horizon, asset)"},
        )
    finally:
        serve.shutdown()
    assert ray.is_initialized()  # the session's Ray keeps running

    # `serve run analysis.serve:app model=...`: the builder makes the same application; no model, no app.
    assert type(app({"model": model_path})).__name__ == "Application"
    with pytest.raises(ModelSourceError, match="is neither a model directory"):
        build(str(model_path) + "-missing")
    assert issubclass(ModelSourceError, ForecastError)
