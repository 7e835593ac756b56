"""Baselines search spaces: data only. Strategy builders live in search_spaces.strategies.

`method` is the only knob, and every strategy lists all six methods: whatever mode a sweep runs,
its baselines are all of them (one configuration each; nothing else to tune). `prediction_length`
is the forecasting task and `context_length` only matters to the statsforecast methods (the rows
their fitted model is run over before each origin).
"""

from search_spaces import domains as d

METHODS = ["rw", "drift", "mean", "auto_arima", "auto_ets", "auto_theta"]  # trainables.baselines reads this list

# Each method's name in the reports' words ("beats AutoETS on test").
NAMES = {
    "rw": "the random walk",
    "drift": "drift",
    "mean": "the historical mean",
    "auto_arima": "AutoARIMA",
    "auto_ets": "AutoETS",
    "auto_theta": "AutoTheta",
}

# 128 rows of context: enough for the fitted ARIMA/ETS/Theta states to settle before each origin,
# and short enough for the small training windows of quick sweeps (a fold must hold context + horizon).
BASELINE = {"method": "rw", "context_length": 128, "prediction_length": 1}

PRIORITY = [{"method": m} for m in METHODS]
QUICK = {"method": METHODS}
GRID = {"method": METHODS}
FULL = {"method": METHODS}
PARAM_RANGES = {"method": METHODS}
# Optuna samples: with fewer trials than methods some go unrun (an explicit mode runs all six).
OPTUNA = {"method": d.choice(METHODS)}

# The contract tests' configuration: a statsforecast model on a short context.
TINY = {"method": "auto_ets", "context_length": 64, "prediction_length": 2}


def config_error(config: dict) -> str | None:
    """Why a configuration cannot run, or None (the sweep checks it at the door)."""
    c = {**BASELINE, **config}
    if c["method"] not in METHODS:
        return f"method must be one of {', '.join(METHODS)}, got {c['method']!r}"
    if c["method"].startswith("auto_") and int(c["context_length"]) < 8:
        # AutoETS's σ² divides by rows − parameters − 1 of the context it runs over
        return f"{c['method']}: context_length must be at least 8, got {c['context_length']}"
    if int(c["prediction_length"]) < 1:
        return f"prediction_length must be at least 1, got {c['prediction_length']}"
    return None
