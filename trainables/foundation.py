"""What the three foundation adapters (Toto, Chronos-2, Kronos) share: precision, TensorBoard,
validation origins, adapter.json, and the pretrained weights held once per process."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np

from trainables import store

META_FILE = "adapter.json"


def on_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def autocast(device: str):
    """bf16 autocast on a bf16-capable CUDA device (no loss scaling needed); fp32 elsewhere."""
    import torch

    if on_cuda(device) and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


class Board:
    """TensorBoard scalars under `log_dir`; a no-op without one."""

    def __init__(self, log_dir: str | None) -> None:
        self._writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            os.makedirs(log_dir, exist_ok=True)
            self._writer = SummaryWriter(log_dir=log_dir)

    def add(self, tag: str, value: float, step: int) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()


def spread(first: int, last: int, n: int) -> np.ndarray:
    """At most `n` evenly spread integers in [first, last] (empty when last < first)."""
    if last < first:
        return np.array([], dtype=int)
    return np.unique(np.linspace(first, last, num=min(n, last - first + 1)).astype(int))


def save_meta(path: str, meta: dict[str, Any]) -> None:
    """adapter.json: config, seed and what else `load` needs (numpy values written as plain JSON)."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, META_FILE), "w") as f:
        f.write(store.dumps(meta))


def load_meta(path: str) -> dict[str, Any]:
    with open(os.path.join(path, META_FILE)) as f:
        return json.load(f)


# Loaded pretrained models, on the CPU, by (what, resolved path): read from disk once per process.
_PRETRAINED: dict[tuple[str, str], Any] = {}


def pretrained(what: str, path: str, load: Callable[[str], Any], clone: Callable[[Any], Any] = copy.deepcopy) -> Any:
    """An independent copy (`clone`) of the model `load(path)` returns, loaded from disk once per process.

    Every unit of a trial (fold × seed) starts from the same released weights; each gets its own
    copy, so fine-tuning one never changes the weights another starts from.
    """
    key = (what, os.path.realpath(path))
    if key not in _PRETRAINED:
        _PRETRAINED[key] = load(path)
    return clone(_PRETRAINED[key])
