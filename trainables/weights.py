"""Where pretrained weights come from: local directory → local HF cache → hub download."""

from __future__ import annotations

import os


class WeightsNotFound(RuntimeError):
    """No copy of the weights could be found or downloaded."""


def resolve(pretrained: str) -> str:
    """Return a local directory holding the weights named by `pretrained`.

    `pretrained` is a local directory or a hub id (``owner/name``). The HF cache is tried
    before the network so an offline machine with pre-downloaded weights works.
    """
    if os.path.isdir(pretrained):
        return os.path.abspath(pretrained)
    if os.path.exists(pretrained) or pretrained.count("/") != 1:
        raise WeightsNotFound(f"--pretrained {pretrained!r} is neither a directory nor a hub id (owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(pretrained, local_files_only=True)
    except Exception:  # not cached: fall through to the hub
        pass
    try:
        return snapshot_download(pretrained)
    except Exception as exc:
        raise WeightsNotFound(
            f"cannot load weights {pretrained!r} (not a local directory, not in the HF cache, "
            f"hub unreachable: {type(exc).__name__}); pre-download them with "
            f"`huggingface-cli download {pretrained}` or pass --pretrained DIR, or use --init scratch"
        ) from None
