"""The one file-I/O module: small files on a local path or any pyarrow filesystem URI (s3://…).

Workers (trainables), the driver (sweeps) and analysis all go through these functions.

Conventions, the same for every operation:

* **Reading a missing file.** `read_text` / `read_bytes` / `read_json` raise `MissingFile` (a
  `FileNotFoundError`, so `except OSError` still catches it). The `maybe_*` twins —
  `maybe_read_text`, `maybe_read_bytes`, `maybe_read_many`, `maybe_read_parquet` — return None
  instead, for callers to whom a missing file is an ordinary answer (analysis of a sweep that is still
  running, a cache not yet written). On object storage a `maybe_*` read also answers None when the
  read fails for another reason (the object is unreachable): analysis treats both alike.
* **Writing is atomic.** A reader never sees half a file: locally the bytes go to a temporary file
  next to the target, which is then renamed over it (`os.replace`; on failure the temporary file is
  removed and the old file is left as it was). On s3:// an object is only visible once its single PUT
  completes, which is atomic already. Objects are serialised to bytes *before* anything is written, so
  an object that fails to serialise leaves the old file intact on either kind of path.
* **Listing and existence** never raise for a missing directory: `subdirs` / `entries` answer empty.

Local paths take plain `os` calls (fast on 100 000 small files); URIs go through pyarrow, with bulk
reads (`maybe_read_many`) fanned out over threads because each one is a network round trip.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import pyarrow.fs as pafs


class MissingFile(FileNotFoundError):
    """The file to read does not exist (`read_text` and friends; the `maybe_*` reads answer None)."""

    def __init__(self, path: str):
        super().__init__(2, "No such file", str(path))
        self.path = str(path)


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path inside it (raises on an unusable URI)."""
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def is_remote(path: str) -> bool:
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a local path or a URI (plain string joins: this runs 100 000s of times)."""
    return "/".join([str(base).rstrip("/"), *parts])


# ---------------------------------------------------------------------------------------- queries


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
    """Modification time in seconds, or None when `path` does not exist."""
    if not is_remote(path):
        try:
            return os.stat(path).st_mtime
        except OSError:
            return None
    fs, p = filesystem(path)
    info = fs.get_file_info(p)
    return None if info.type == pafs.FileType.NotFound or info.mtime is None else info.mtime.timestamp()


# ------------------------------------------------------------------------------------------ reads


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


def read_bytes(path: str) -> bytes:
    """The file's bytes; raises `MissingFile` when it does not exist."""
    if not is_remote(path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            raise MissingFile(path) from None
    fs, p = filesystem(path)
    try:
        with fs.open_input_stream(p) as f:
            return f.read()
    except FileNotFoundError:
        raise MissingFile(path) from None
    except OSError:
        if fs.get_file_info(p).type == pafs.FileType.NotFound:
            raise MissingFile(path) from None
        raise


def read_text(path: str) -> str:
    """The file's text; raises `MissingFile` when it does not exist."""
    return read_bytes(path).decode()


def read_json(path: str) -> object:
    """The parsed JSON file; raises `MissingFile` when it does not exist (ValueError when it is not JSON)."""
    return json.loads(read_text(path))


def maybe_read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist (or, on object storage, cannot be read)."""
    return _read_remote(path) if is_remote(path) else _read_local(path)


def maybe_read_text(path: str) -> str | None:
    """The file's text, or None as `maybe_read_bytes`."""
    data = maybe_read_bytes(path)
    return None if data is None else data.decode()


def maybe_read_many(paths: list[str]) -> list[bytes | None]:
    """Bytes of each path (None where missing), in order; in parallel on object storage."""
    if not paths or not is_remote(paths[0]):
        return [_read_local(p) for p in paths]
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(_read_remote, paths))


def maybe_read_parquet(path: str):
    """(table as a DataFrame, its string metadata), or None when the file is missing or unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = maybe_read_bytes(path)
    if data is None:
        return None
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError):
        return None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
    return table.to_pandas(), meta


def read_json_files(pattern_dir: str, name: str) -> list[dict]:
    """Parse `<pattern_dir>/*/<name>` for every sub-directory that has it."""
    out = []
    for sub in subdirs(pattern_dir):
        path = join(pattern_dir, sub, name)
        if exists(path):
            out.append(read_json(path))
    return out


# ----------------------------------------------------------------------------------------- writes


def write_bytes(path: str, data: bytes) -> None:
    """Write `data` atomically (see the module docstring), creating the parent directories."""
    if not is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # readers never see half a file
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return
    fs, p = filesystem(path)
    fs.create_dir(os.path.dirname(p), recursive=True)
    # One write of bytes already in memory, then close: the object appears whole when its PUT
    # completes (atomic on S3), never partially.
    with fs.open_output_stream(p) as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    """Write `text` atomically."""
    write_bytes(path, text.encode())


def _plain(obj: object) -> object:
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)  # numpy scalars and arrays → Python values


def dumps(obj: object) -> str:
    """JSON text of results that may hold numpy scalars."""
    return json.dumps(obj, indent=1, default=_plain)


def write_json(path: str, obj: object) -> None:
    """Write `obj` as `dumps` text, atomically: it is serialised first, so a failure leaves the old file."""
    write_text(path, dumps(obj))


def write_parquet(path: str, frame, metadata: dict[str, str] | None = None) -> None:
    """Write a DataFrame (no index) with extra string schema metadata, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------------------ directories


def put_dir(local: str, dest: str, keep: bool = False) -> None:
    """Move (copy when `keep`) a finished local directory to `dest` (a local path or URI), replacing what is there."""
    if not is_remote(dest):
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        shutil.copytree(local, dest) if keep else shutil.move(local, dest)
        return
    fs, p = filesystem(dest)
    fs.create_dir(p, recursive=True)
    pafs.copy_files(local, p, destination_filesystem=fs)


def local_copy(path: str) -> str:
    """A local directory holding `path`'s files: `path` itself if local, else a fresh download."""
    if not is_remote(path):
        return path
    fs, p = filesystem(path)
    out = tempfile.mkdtemp(prefix="forecast-sweeps-")
    pafs.copy_files(p, out, source_filesystem=fs)
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
