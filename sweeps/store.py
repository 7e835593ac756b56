"""Read and write small files on a local path or any pyarrow filesystem URI (s3://…)."""

from __future__ import annotations

import json
import os

import pyarrow.fs as pafs


def _fs(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def exists(path: str) -> bool:
    fs, p = _fs(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def read_text(path: str) -> str:
    fs, p = _fs(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def write_text(path: str, text: str) -> None:
    fs, p = _fs(path)
    fs.create_dir(os.path.dirname(p), recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(text.encode())


def list_dirs(path: str) -> list[str]:
    """Names of the sub-directories of `path` (empty when it does not exist)."""
    fs, p = _fs(path)
    if fs.get_file_info(p).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(p))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def _plain(obj: object) -> object:
    return obj.item() if hasattr(obj, "item") else str(obj)  # numpy scalars → Python numbers


def dumps(obj: object) -> str:
    """JSON text of results that may hold numpy scalars."""
    return json.dumps(obj, indent=1, default=_plain)
