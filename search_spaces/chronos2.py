"""Chronos-2 search spaces: data only. Strategy builders live in search_spaces.strategies.

`prediction_length` is the forecasting task, not a knob: it stays at the baseline so every
configuration is scored on the same horizon. `size` only matters with init="scratch".
"""

from search_spaces import domains as d

BASELINE = {
    "pretrained": "amazon/chronos-2",
    "init": "pretrained",
    "size": "tiny",
    "context_length": 256,
    "prediction_length": 1,
    "learning_rate": 1e-5,
    "num_steps": 200,
    "batch_size": 32,
    "finetune_mode": "full",
    "lora_r": 8,
    "lora_alpha": 16,
}

# Zero-shot first (the foundation model's own skill), then LoRA on a frozen backbone
# (lr 1e-5…1e-4 is the range the Chronos authors suggest for LoRA), an aggressive full
# fine-tune, and the longest context zero-shot.
PRIORITY = [
    {},
    {"num_steps": 0},
    {"finetune_mode": "lora", "learning_rate": 5e-5, "lora_r": 16, "lora_alpha": 32},
    {"finetune_mode": "full", "learning_rate": 1e-4},
    {"num_steps": 0, "context_length": 512},
]

QUICK = {"num_steps": [0, 200], "context_length": [128, 512]}

GRID = {
    "learning_rate": [1e-6, 1e-5, 1e-4],
    "context_length": [128, 256, 512],
}

FULL = {
    "learning_rate": [1e-5, 1e-4],
    "context_length": [128, 256, 512],
    "finetune_mode": ["full", "lora"],
    "num_steps": [100, 300],
}

PARAM_RANGES = {
    "context_length": [64, 128, 256, 512],
    "learning_rate": [1e-6, 1e-5, 1e-4],
    "num_steps": [0, 100, 200, 500],
    "batch_size": [16, 32, 64],
    "finetune_mode": ["full", "lora"],
    "lora_r": [4, 8, 16, 32],
}

OPTUNA = {
    "learning_rate": d.loguniform(1e-6, 3e-4),
    "context_length": d.qrandint(64, 512, 32),
    "num_steps": d.qrandint(0, 500, 50),
    "batch_size": d.choice([16, 32, 64]),
    "finetune_mode": d.choice(["full", "lora"]),
    "lora_r": d.choice([4, 8, 16, 32]),
    "lora_alpha": d.choice([8, 16, 32, 64]),
}

# Randomly initialised architectures for init="scratch" (tests, ablations, offline machines).
SIZES = {
    "tiny": {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_heads": 4},
    "small": {"d_model": 128, "d_kv": 32, "d_ff": 256, "num_layers": 4, "num_heads": 4},
}

# A tiny random model and a few steps, for tests and benchmarks.
TINY = {
    "init": "scratch",
    "size": "tiny",
    "context_length": 64,
    "prediction_length": 2,
    "num_steps": 3,
    "batch_size": 8,
}
# What makes a configuration zero-shot (the weights as loaded, no fine-tuning).
ZERO_SHOT = {"num_steps": 0}


def planned_steps(config: dict) -> int:
    """Optimizer steps a unit of `config` trains for at most (ASHA's clock; no model import needed)."""
    c = {**BASELINE, **config}
    return max(0, int(c["num_steps"]))
