"""Read and write small files on a local path or any pyarrow filesystem URI (s3://…)."""

from __future__ import annotations

import json
import os

import pyarrow.fs as pafs


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path inside it (raises on an unusable URI)."""
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def exists(path: str) -> bool:
    fs, p = filesystem(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def read_text(path: str) -> str:
    fs, p = filesystem(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def write_text(path: str, text: str) -> None:
    fs, p = filesystem(path)
    fs.create_dir(os.path.dirname(p), recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(text.encode())


def list_dirs(path: str) -> list[str]:
    """Names of the sub-directories of `path` (empty when it does not exist)."""
    fs, p = filesystem(path)
    if fs.get_file_info(p).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(p))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def _plain(obj: object) -> object:
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)  # numpy scalars and arrays → Python values


def dumps(obj: object) -> str:
    """JSON text of results that may hold numpy scalars."""
    return json.dumps(obj, indent=1, default=_plain)


def put_dir(local: str, dest: str, keep: bool = False) -> None:
    """Move (copy when `keep`) a finished local directory to `dest` (a local path or URI), replacing what is there."""
    if "://" not in dest:
        import shutil

        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        shutil.copytree(local, dest) if keep else shutil.move(local, dest)
        return
    fs, p = filesystem(dest)
    fs.create_dir(p, recursive=True)
    pafs.copy_files(local, p, destination_filesystem=fs)


def read_json_files(pattern_dir: str, name: str) -> list[dict]:
    """Parse `<pattern_dir>/*/<name>` for every sub-directory that has it."""
    out = []
    for sub in list_dirs(pattern_dir):
        path = f"{pattern_dir.rstrip('/')}/{sub}/{name}"
        if exists(path):
            out.append(json.loads(read_text(path)))
    return out


def delete_dir(path: str) -> None:
    fs, p = filesystem(path)
    fs.delete_dir(p)


def delete_file(path: str) -> None:
    """Remove one file (nothing when it is already gone)."""
    fs, p = filesystem(path)
    try:
        fs.delete_file(p)
    except FileNotFoundError:
        pass
