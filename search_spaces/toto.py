"""Toto search spaces: data only. Strategy builders live in search_spaces.strategies.

The released Toto reads 64-step patches, so every `context_length` here is a multiple of 64
(the tiny and small scratch models use patches of 16 and 64). `prediction_length` is the
forecasting task: it moves only in the "longer context" priority point. `size` only matters
with init="scratch".
"""

from ray import tune

BASELINE = {
    "pretrained": "Datadog/Toto-Open-Base-1.0",
    "init": "pretrained",
    "size": "tiny",
    "context_length": 512,
    "prediction_length": 64,
    "learning_rate": 1e-4,  # TotoForFinetuning's default
    "warmup_steps": 20,
    "max_steps": 300,
    "batch_size": 16,
    "weight_decay": 0.01,
    "loss": "nll",
    "num_samples": 256,  # sampled paths per forecast, as the authors evaluate (fev/evaluate.py)
}

# The baseline; the package's fine-tuning recipe (warmup ≈ 10 % of the run, as its
# 200 / 2 200 default steps) at a higher lr with the quantile (CRPS) loss; a longer context
# and horizon; a conservative lr with the Huber loss; and the foundation model zero-shot.
PRIORITY = [
    {},
    {
        "context_length": 512,
        "learning_rate": 3e-4,
        "warmup_steps": BASELINE["max_steps"] // 10,
        "loss": "quantile",
    },
    {"context_length": 1024, "prediction_length": 128},
    {"learning_rate": 1e-4, "loss": "huber"},
    {"max_steps": 0},
]

QUICK = {"learning_rate": [1e-4, 3e-4], "loss": ["nll", "quantile"]}

GRID = {
    "learning_rate": [3e-5, 1e-4, 3e-4],
    "context_length": [256, 512, 1024],
}

FULL = {
    "context_length": [256, 512, 1024],
    "learning_rate": [3e-5, 1e-4, 3e-4],
    "loss": ["nll", "quantile", "huber"],
}

PARAM_RANGES = {
    "context_length": [256, 512, 1024, 2048],
    "learning_rate": [3e-5, 1e-4, 3e-4, 1e-3],
    "warmup_steps": [0, 20, 60],
    "max_steps": [0, 100, 300, 1000],
    "batch_size": [8, 16, 32],
    "weight_decay": [0.0, 0.01, 0.1],
    "loss": ["nll", "quantile", "huber"],
    "num_samples": [16, 64, 256],
}

OPTUNA = {
    "learning_rate": tune.loguniform(1e-5, 1e-3),
    "context_length": tune.qrandint(256, 1024, 64),  # multiples of the patch size
    "warmup_steps": tune.qrandint(0, 100, 10),
    "max_steps": tune.qrandint(100, 1000, 100),
    "batch_size": tune.choice([8, 16, 32]),
    "weight_decay": tune.uniform(0.0, 0.1),
    "loss": tune.choice(["nll", "quantile", "huber"]),
}
