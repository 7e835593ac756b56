"""Where pretrained weights come from: local directory → local HF cache → hub download."""

from __future__ import annotations

import hashlib
import os
import re


class WeightsNotFound(RuntimeError):
    """No copy of the weights could be found or downloaded."""


class WeightsChanged(WeightsNotFound):
    """The weights a unit refers to are no longer the ones it was evaluated with."""


def resolve(pretrained: str, revision: str | None = None) -> str:
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
        return snapshot_download(pretrained, revision=revision, local_files_only=True)
    except Exception:  # not cached: fall through to the hub
        pass
    try:
        return snapshot_download(pretrained, revision=revision)
    except Exception as exc:
        raise WeightsNotFound(
            f"cannot load weights {pretrained!r} (not a local directory, not in the HF cache, "
            f"hub unreachable: {type(exc).__name__}); pre-download them with "
            f"`huggingface-cli download {pretrained}` or pass --pretrained DIR, or use --init scratch"
        ) from None


# --------------------------------------------------------------------------- references

_DIGESTS: dict[tuple, str] = {}  # (path, file sizes and mtimes) → digest, once per process


def _files(path: str) -> list[str]:
    """The directory's files, relative, sorted; hidden ones left out (`huggingface-cli download
    --local-dir` keeps and rewrites its metadata and locks under .cache/)."""
    out = []
    for d, dirs, names in os.walk(path, followlinks=True):
        dirs[:] = [n for n in dirs if not n.startswith(".")]
        out += [os.path.relpath(os.path.join(d, f), path) for f in names if not f.startswith(".")]
    return sorted(out)


def digest(path: str) -> str:
    """sha256 over a weights directory's files (names and contents, symlinks followed)."""
    files = _files(path)
    stamp = tuple(
        (f, os.stat(os.path.join(path, f)).st_size, os.stat(os.path.join(path, f)).st_mtime_ns) for f in files
    )
    key = (os.path.realpath(path), stamp)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        for f in files:
            h.update(f.encode() + b"\0")
            with open(os.path.join(path, f), "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def reference(pretrained: str) -> dict[str, str | None]:
    """Where released weights came from, to store instead of a copy: the configured source, the
    resolved directory, the hub revision when it lies in the HF cache, and a digest of its files."""
    path = resolve(pretrained)
    match = re.search(r"[/\\]snapshots[/\\]([0-9a-f]{7,64})[/\\]?$", path)
    return {"source": pretrained, "path": path, "revision": match.group(1) if match else None, "sha256": digest(path)}


def follow(ref: dict[str, str | None]) -> str:
    """The local directory holding exactly the weights `ref` names: its recorded path, else its
    source (at its revision) resolved again. WeightsChanged when what is found differs,
    WeightsNotFound when nothing is found."""
    path = ref.get("path")
    if path and os.path.isdir(path) and digest(path) == ref["sha256"]:
        return path
    try:
        found = resolve(str(ref["source"]), ref.get("revision"))
    except WeightsNotFound:
        if path and os.path.isdir(path):
            raise _changed(ref, path) from None
        raise WeightsNotFound(
            f"weights {ref['source']!r} this unit refers to are gone (not at {path}, and the source "
            "cannot be resolved): restore or download them, or rerun the unit"
        ) from None
    if digest(found) != ref["sha256"]:
        raise _changed(ref, found)
    return found


def _changed(ref: dict[str, str | None], path: str) -> WeightsChanged:
    return WeightsChanged(
        f"weights {ref['source']!r} at {path} are not the ones this unit was evaluated with "
        f"(sha256 {str(ref['sha256'])[:12]}…, now {digest(path)[:12]}…): restore them, or rerun the unit"
    )
