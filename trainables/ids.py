"""Stable names shared by the trainable and the analysis: configurations and units."""

from __future__ import annotations

import hashlib
import json


def config_id(params: dict) -> str:
    """Short stable hash of a hyperparameter dict (key order does not matter)."""
    text = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def unit_key(fold: str, seed: int, asset: str | None = None) -> str:
    """The directory name of one (fold, seed) unit inside a trial's `units/`; a universe's units
    start with their asset (asset names hold no "__")."""
    return f"{fold}__seed{seed}" if asset is None else f"{asset}__{fold}__seed{seed}"


def unit_id(record: dict) -> tuple[str | None, str, int]:
    """(asset, fold, seed) of a unit record (asset None in a one-asset sweep)."""
    return record.get("asset"), record["fold"], record["seed"]
