"""Toto search spaces: data only. Strategy builders live in search_spaces.strategies.

The released Toto reads 64-step patches, so every `context_length` here is a multiple of 64
(the tiny and small scratch models use patches of 16 and 64). `prediction_length` is the
forecasting task: it moves only in the "longer context" priority point. `size` only matters
with init="scratch".
"""

from search_spaces import domains as d

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
    "learning_rate": d.loguniform(1e-5, 1e-3),
    "context_length": d.qrandint(256, 1024, 64),  # multiples of the patch size
    "warmup_steps": d.qrandint(0, 100, 10),
    "max_steps": d.qrandint(100, 1000, 100),
    "batch_size": d.choice([8, 16, 32]),
    "weight_decay": d.uniform(0.0, 0.1),
    "loss": d.choice(["nll", "quantile", "huber"]),
}

# Randomly initialised architectures for init="scratch" (tests, ablations, offline machines):
# the released layout, shrunk.
SIZES = {
    "tiny": {"patch_size": 16, "embed_dim": 64, "num_layers": 2, "num_heads": 4, "mlp_hidden_dim": 128, "k": 8},
    "small": {"patch_size": 64, "embed_dim": 256, "num_layers": 4, "num_heads": 8, "mlp_hidden_dim": 512, "k": 24},
}

# A tiny random model and a few steps, for tests and benchmarks.
TINY = {
    "init": "scratch",
    "size": "tiny",
    "context_length": 64,
    "prediction_length": 4,
    "max_steps": 3,
    "warmup_steps": 1,
    "batch_size": 4,
    "num_samples": 40,  # the fewest draws that resolve every level (trainables.quantiles.from_samples)
}
# What makes a configuration zero-shot (the weights as loaded, no fine-tuning).
ZERO_SHOT = {"max_steps": 0}


# The released Toto-Open-Base-1.0 reads 64-step patches (its config.json's patch_size).
RELEASED_PATCH = 64


def context_error(context: int, patch: int) -> str | None:
    """Why Toto cannot read `context` rows in `patch`-step patches, or None."""
    if context <= 0 or context % patch:
        return f"context_length {context} must be a positive multiple of Toto's patch size {patch}"
    return None


def config_error(config: dict) -> str | None:
    """Why a configuration cannot run, known before any model loads (the sweep checks it at the
    door); the adapter checks the context again against the patch of the weights it loaded."""
    c = {**BASELINE, **config}
    patch = SIZES[c["size"]]["patch_size"] if c["init"] == "scratch" else RELEASED_PATCH
    return context_error(int(c["context_length"]), patch)


def planned_steps(config: dict) -> int:
    """Optimizer steps a unit of `config` trains for at most (ASHA's clock; no model import needed)."""
    c = {**BASELINE, **config}
    return max(0, int(c["max_steps"]))
