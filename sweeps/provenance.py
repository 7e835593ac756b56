"""What a sweep records about where it came from: git SHA, dirty flag, package versions."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every sweep's; each model adds its own (`registry.ModelEntry.distributions`).
PACKAGES = ("ray", "optuna", "torch", "pandas", "numpy", "pyarrow", "scipy", "arch")


def git_state() -> dict[str, str | bool | None]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain")
    return {"git_sha": git("rev-parse", "HEAD"), "git_dirty": bool(status) if status is not None else None}


def versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    out = {}
    for name in (*PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
