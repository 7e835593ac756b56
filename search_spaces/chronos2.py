"""Chronos-2 search spaces: data only. Strategy builders live in search_spaces.strategies.

`prediction_length` is the forecasting task, not a knob: it stays at the baseline so every
configuration is scored on the same horizon. `size` only matters with init="scratch".
"""

from ray import tune

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
    "learning_rate": tune.loguniform(1e-6, 3e-4),
    "context_length": tune.qrandint(64, 512, 32),
    "num_steps": tune.qrandint(0, 500, 50),
    "batch_size": tune.choice([16, 32, 64]),
    "finetune_mode": tune.choice(["full", "lora"]),
    "lora_r": tune.choice([4, 8, 16, 32]),
    "lora_alpha": tune.choice([8, 16, 32, 64]),
}
