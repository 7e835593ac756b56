"""File access for analysis on a local path or any pyarrow filesystem URI (s3://…).

Local paths take plain `os` calls (fast on 100 000 small files); URIs go through pyarrow, with
reads fanned out over threads because each one is a network round trip.
"""

from __future__ import annotations

import io
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainables.store import filesystem


def is_remote(path: str) -> bool:
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a local path or a URI (plain string joins: this runs 100 000s of times)."""
    return "/".join([str(base).rstrip("/"), *parts])


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    fs, p = filesystem(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def is_dir(path: str) -> bool:
    if not is_remote(path):
        return os.path.isdir(path)
    fs, p = filesystem(path)
    return fs.get_file_info(p).type == pafs.FileType.Directory


def entries(path: str) -> dict[str, tuple[bool, float]]:
    """name → (is a directory, mtime in seconds) of what `path` holds (empty if not a directory)."""
    if not is_remote(path):
        try:
            with os.scandir(path) as it:
                return {e.name: (e.is_dir(), e.stat().st_mtime if e.is_file() else 0.0) for e in it}
        except (FileNotFoundError, NotADirectoryError):
            return {}
    fs, p = filesystem(path)
    if fs.get_file_info(p).type != pafs.FileType.Directory:
        return {}
    out = {}
    for info in fs.get_file_info(pafs.FileSelector(p)):
        mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
        out[info.base_name] = (info.type == pafs.FileType.Directory, mtime)
    return out


def subdirs(path: str) -> list[str]:
    """Sorted names of the sub-directories of `path` (empty if it is not a directory)."""
    if is_remote(path):
        return sorted(name for name, (d, _) in entries(path).items() if d)
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def mtime(path: str) -> float | None:
    if not is_remote(path):
        try:
            return os.stat(path).st_mtime
        except OSError:
            return None
    fs, p = filesystem(path)
    info = fs.get_file_info(p)
    return None if info.type == pafs.FileType.NotFound or info.mtime is None else info.mtime.timestamp()


def _read_local(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_remote(path: str) -> bytes | None:
    fs, p = filesystem(path)
    try:
        with fs.open_input_stream(p) as f:
            return f.read()
    except (FileNotFoundError, OSError):
        return None


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    return _read_remote(path) if is_remote(path) else _read_local(path)


def read_text(path: str) -> str | None:
    data = read_bytes(path)
    return None if data is None else data.decode()


def read_many(paths: list[str]) -> list[bytes | None]:
    """Bytes of each path (None where missing), in order."""
    if not paths or not is_remote(paths[0]):
        return [_read_local(p) for p in paths]
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(_read_remote, paths))


def write_bytes(path: str, data: bytes) -> None:
    if not is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # readers never see half a file
        return
    fs, p = filesystem(path)
    fs.create_dir(os.path.dirname(p), recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode())


def write_parquet(path: str, frame: pd.DataFrame, metadata: dict[str, str] | None = None) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    write_bytes(path, buf.getvalue())


def read_parquet(path: str) -> tuple[pd.DataFrame, dict[str, str]] | None:
    """The table and its string metadata, or None when the file is missing or unreadable."""
    data = read_bytes(path)
    if data is None:
        return None
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError):
        return None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
    return table.to_pandas(), meta


def local_copy(path: str) -> str:
    """A local directory holding `path`'s files: `path` itself if local, else a fresh download."""
    if not is_remote(path):
        return path
    fs, p = filesystem(path)
    out = tempfile.mkdtemp(prefix="forecast-sweeps-")
    pafs.copy_files(p, out, source_filesystem=fs)
    return out
