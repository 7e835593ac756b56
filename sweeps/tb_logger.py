"""Tune's per-fold results as TensorBoard scalars and hparams, written without torch.

Tune's own TensorBoard logger writes through tensorboardX, which imports torch: ~2 s of CPU
and ~250 MB in the driver, which otherwise never needs torch. This writes the same tags
(`ray/tune/<metric>`, step = folds reported) and an hparams session per trial with the
`tensorboard` package's event writer and protos.
"""

from __future__ import annotations

import math
import numbers
import time

from ray.air.constants import TRAINING_ITERATION
from ray.tune.logger import TBXLoggerCallback
from ray.tune.result import TIME_TOTAL_S
from ray.tune.utils import flatten_dict
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import summary_v2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

SKIPPED = ("config", "pid", "timestamp", TIME_TOTAL_S, TRAINING_ITERATION)


class TensorBoardLogger(TBXLoggerCallback):
    """Drop-in for Tune's TBXLoggerCallback (a subclass, so Tune adds no second one)."""

    def __init__(self):  # deliberately not super().__init__(): that imports tensorboardX
        self._writers: dict = {}

    def log_trial_start(self, trial) -> None:
        if trial in self._writers:
            self._writers[trial].close()
        trial.init_local_path()
        self._writers[trial] = EventFileWriter(trial.local_path)

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:  # noqa: ARG002 (Tune's signature)
        if result.get("intermediate"):  # a validation inside a unit (trainables.nested._Live), not a fold result
            return
        if trial not in self._writers:
            self.log_trial_start(trial)
        scalars = scalar_values({k: v for k, v in result.items() if k not in SKIPPED})
        values = [Summary.Value(tag=f"ray/tune/{k}", simple_value=float(v)) for k, v in scalars.items()]
        # Step = folds reported (training_iteration also counts the units' intermediate results).
        self._write(trial, int(result.get("folds_done", result[TRAINING_ITERATION])), values)

    def log_trial_end(self, trial, failed: bool = False) -> None:  # noqa: ARG002 (Tune's signature)
        if trial not in self._writers:
            return
        # The whole configuration: explicit points (priority, OFAT) leave evaluated_params empty.
        params = scalar_values(trial.config or {}, types=(str, bool, numbers.Number))
        if params:
            summary = summary_v2.hparams_pb(params, trial_id=trial.trial_id)
            self._write(trial, 0, list(summary.value))
        self._writers.pop(trial).close()

    def on_experiment_end(self, trials, **info) -> None:  # noqa: ARG002 (Tune's signature)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _write(self, trial, step: int, values: list) -> None:
        writer = self._writers[trial]
        writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))
        writer.flush()


def scalar_values(values: dict, types: tuple = (numbers.Number,)) -> dict:
    """`values` flattened with "/", keeping finite numbers (and `types`) as plain Python values."""
    out = {}
    for key, value in flatten_dict(values, delimiter="/").items():
        value = value.item() if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 else value
        if isinstance(value, types) and not (isinstance(value, float) and not math.isfinite(value)):
            out[key] = value
    return out
