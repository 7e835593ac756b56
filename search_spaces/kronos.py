"""Kronos search spaces: data, and the rules a configuration must meet (no model import).

Strategy builders live in search_spaces.strategies.
"""

import os

from search_spaces import domains as d

# The released Kronos-small with its tokenizer; the predictor fine-tuned at upstream's predictor
# learning rate (4e-5) on a frozen tokenizer. When the tokenizer is fine-tuned too, it trains at
# upstream's tokenizer rate (finetune/config.py: 2e-4). `num_samples` sampled paths give the median
# forecast: upstream's predictor averages `sample_count` paths (1 in its README and examples, 5 in
# its backtest), too few for a stable median, so 50 here.
BASELINE = {
    "pretrained": "NeoQuasar/Kronos-small",
    "tokenizer": "NeoQuasar/Kronos-Tokenizer-base",
    "init": "pretrained",
    "size": "tiny",  # used by init="scratch" only
    "context_length": 256,
    "prediction_length": 5,
    "learning_rate": 4e-5,  # the predictor's
    "tokenizer_learning_rate": 2e-4,
    "tokenizer_steps": 0,
    "predictor_steps": 200,
    "batch_size": 32,
    "temperature": 1.0,
    "top_p": 0.9,
    "num_samples": 50,
}

PRIORITY = [
    # balanced: the full context Kronos-small was trained with, a faster learning rate
    {"context_length": 512, "learning_rate": 3e-4, "batch_size": 32},
    # larger context: 1024 would need a model trained on it (Kronos-mini, max 2048, with
    # Kronos-Tokenizer-2k). Kronos-small's max is 512, so this point uses 512 at the baseline rate.
    {"context_length": 512},
    {"learning_rate": 1e-4, "batch_size": 16},
    # zero-shot: the released weights as they are
    {"tokenizer_steps": 0, "predictor_steps": 0},
]

QUICK = {"learning_rate": [4e-5, 3e-4], "tokenizer_steps": [0, 100]}

GRID = {"learning_rate": [4e-5, 1e-4, 3e-4], "context_length": [128, 256, 512]}

FULL = {
    "learning_rate": [2e-5, 5e-5, 1e-4, 3e-4],
    "context_length": [128, 256, 512],
    "tokenizer_steps": [0, 100],
}

# No tokenizer_learning_rate: one-at-a-time moves start from the baseline, whose tokenizer is not
# fine-tuned (tokenizer_steps 0), so they would be runs that change nothing.
PARAM_RANGES = {
    "context_length": [64, 128, 256, 512],
    "learning_rate": [1e-5, 4e-5, 1e-4, 3e-4],
    "tokenizer_steps": [0, 50, 200],
    "predictor_steps": [0, 100, 200, 500],
    "batch_size": [16, 32, 64],
    "temperature": [0.6, 0.8, 1.0, 1.2],
    "top_p": [0.8, 0.9, 1.0],
    "num_samples": [20, 50, 100],
}

OPTUNA = {
    "learning_rate": d.loguniform(1e-5, 1e-3),
    "context_length": d.choice([128, 256, 512]),
    "tokenizer_steps": d.choice([0, 100]),  # whether to fine-tune the tokenizer
    "tokenizer_learning_rate": d.loguniform(5e-5, 1e-3),  # matters only when it is fine-tuned
    "predictor_steps": d.qrandint(50, 500, 50),
    "batch_size": d.choice([16, 32, 64]),
    "temperature": d.uniform(0.5, 1.2),
    "top_p": d.uniform(0.7, 1.0),
    "num_samples": d.choice([20, 50, 100]),
}

# Released architectures (config.json of Kronos-Tokenizer-base and Kronos-small) for init="scratch";
# "tiny" shrinks them for tests. d_model must divide by 4: the dependency layer has 4 heads
# whatever n_heads is.
SIZES = {
    "tiny": {
        "tokenizer": {"d_model": 32, "n_heads": 2, "ff_dim": 64, "n_enc_layers": 2, "n_dec_layers": 2,
                      "s1_bits": 4, "s2_bits": 4, "group_size": 4},
        "predictor": {"n_layers": 2, "d_model": 32, "n_heads": 2, "ff_dim": 64, "ffn_dropout_p": 0.0,
                      "attn_dropout_p": 0.0, "resid_dropout_p": 0.0, "token_dropout_p": 0.0},
    },
    "small": {
        "tokenizer": {"d_model": 256, "n_heads": 4, "ff_dim": 512, "n_enc_layers": 4, "n_dec_layers": 4,
                      "s1_bits": 10, "s2_bits": 10, "group_size": 4},
        "predictor": {"n_layers": 8, "d_model": 512, "n_heads": 8, "ff_dim": 1024, "ffn_dropout_p": 0.25,
                      "attn_dropout_p": 0.1, "resid_dropout_p": 0.25, "token_dropout_p": 0.1},
    },
}  # fmt: skip

# A tiny random model and a few steps, for tests and benchmarks.
TINY = {
    "init": "scratch",
    "size": "tiny",
    "context_length": 64,
    "prediction_length": 2,
    "tokenizer_steps": 2,
    "predictor_steps": 2,
    "batch_size": 4,
    "num_samples": 40,  # the fewest draws that resolve every level (trainables.quantiles.from_samples)
}
# What makes a configuration zero-shot (the weights as loaded, no fine-tuning).
ZERO_SHOT = {"tokenizer_steps": 0, "predictor_steps": 0}


# Context each released predictor was trained with (kronos-finance's model zoo).
MAX_CONTEXT = {"Kronos-mini": 2048, "Kronos-small": 512, "Kronos-base": 512}
DEFAULT_MAX_CONTEXT = 512


def max_context(config: dict) -> int:
    """Longest token window the configured predictor was trained on."""
    if config["init"] == "scratch":
        return DEFAULT_MAX_CONTEXT
    name = os.path.basename(str(config["pretrained"]).rstrip("/"))
    return MAX_CONTEXT.get(name, DEFAULT_MAX_CONTEXT)


def config_error(config: dict) -> str | None:
    """The first bad field of a configuration, or None (the sweep checks it at the door, the
    adapter again when it is built)."""
    c = {**BASELINE, **config}
    limit = max_context(c)
    checks = {
        "init": c["init"] in ("pretrained", "scratch"),
        "size": c["size"] in SIZES,
        "context_length": 2 <= int(c["context_length"]) <= limit,
        "prediction_length": int(c["prediction_length"]) >= 1,
        "tokenizer_steps": int(c["tokenizer_steps"]) >= 0,
        "predictor_steps": int(c["predictor_steps"]) >= 0,
        "batch_size": int(c["batch_size"]) >= 1,
        "learning_rate": float(c["learning_rate"]) > 0,
        "tokenizer_learning_rate": float(c["tokenizer_learning_rate"]) > 0,
        "temperature": float(c["temperature"]) > 0,
        "top_p": 0 < float(c["top_p"]) <= 1,
        "num_samples": int(c["num_samples"]) >= 1,
    }
    for key, ok in checks.items():
        if not ok:
            hint = f" (this model's max context is {limit})" if key == "context_length" else ""
            return f"bad {key}={c[key]!r}{hint}"
    return None


def planned_steps(config: dict) -> int:
    """Optimizer steps a unit of `config` trains for at most (ASHA's clock; no model import needed)."""
    c = {**BASELINE, **config}
    return max(0, int(c["predictor_steps"]))  # the stage that reports validations
