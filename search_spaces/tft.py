"""TFT search spaces: data only. Strategy builders live in search_spaces.strategies."""

from search_spaces import domains as d

BASELINE = {
    "max_encoder_length": 60,
    "max_prediction_length": 1,
    "batch_size": 64,
    "max_epochs": 4,
    "limit_train_batches": 30,
    "learning_rate": 1e-3,
    "hidden_size": 16,
    "attention_head_size": 2,
    "dropout": 0.1,
    "hidden_continuous_size": 8,
    "gradient_clip_val": 0.1,
    "early_stopping_patience": 3,
    "early_stopping_min_delta": 0.0,
}

# Hand-picked starting points: the pytorch-forecasting tutorial settings, a larger model
# (Lim et al. 2021 use hidden 160 on daily data; scaled down for CPU) and a long context.
PRIORITY = [
    {},
    {"learning_rate": 0.03, "hidden_size": 16, "attention_head_size": 1, "dropout": 0.1, "hidden_continuous_size": 8},
    {"hidden_size": 32, "attention_head_size": 4, "hidden_continuous_size": 16, "learning_rate": 3e-4},
    {"max_encoder_length": 120, "learning_rate": 5e-4, "dropout": 0.2},
]

QUICK = {"learning_rate": [1e-3, 3e-3], "hidden_size": [8, 16]}

GRID = {
    "learning_rate": [3e-4, 1e-3, 3e-3],
    "hidden_size": [8, 16, 32],
    "max_encoder_length": [30, 60],
}

FULL = {
    "learning_rate": [1e-4, 3e-4, 1e-3, 3e-3],
    "hidden_size": [8, 16, 32],
    "attention_head_size": [1, 2, 4],
    "dropout": [0.1, 0.2],
    "max_encoder_length": [30, 60, 120],
}

PARAM_RANGES = {
    "max_encoder_length": [30, 60, 120],
    "learning_rate": [3e-4, 1e-3, 3e-3],
    "hidden_size": [8, 16, 32],
    "dropout": [0.0, 0.1, 0.3],
}

OPTUNA = {
    "learning_rate": d.loguniform(1e-4, 3e-2),
    "hidden_size": d.choice([8, 16, 32, 64]),
    "attention_head_size": d.choice([1, 2, 4]),
    "dropout": d.uniform(0.0, 0.4),
    "hidden_continuous_size": d.choice([4, 8, 16]),
    "max_encoder_length": d.qrandint(20, 120, 10),
    "gradient_clip_val": d.loguniform(0.01, 1.0),
}

# A tiny TFT for tests and the demo: one epoch of three batches, about a second a unit on one core.
TINY = {
    "max_encoder_length": 20,
    "max_prediction_length": 2,
    "batch_size": 32,
    "max_epochs": 1,
    "limit_train_batches": 3,
    "hidden_size": 8,
    "attention_head_size": 1,
    "hidden_continuous_size": 4,
}


def planned_steps(config: dict) -> int:
    """Optimizer steps a unit of `config` trains for at most (ASHA's clock; no model import needed)."""
    c = {**BASELINE, **config}
    return int(c["max_epochs"]) * int(c.get("limit_train_batches", 30))
