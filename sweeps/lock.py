"""One driver per sweep directory: a lock file naming its holder, kept fresh while it runs.

A second driver on the same sweep (a RayJob restarted while the old driver still lives, a second
terminal) is refused at the door with the holder's host, pid and start. A lock whose driver is
gone is taken over: on the same host when its pid no longer runs, elsewhere (s3://, another
machine) when its heartbeat is older than STALE_S. Object stores have no atomic create, so the
taker reads the lock back and yields if another driver's write won.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

from sweeps.spec import SpecError
from trainables import layout, store

LOCK = layout.LOCK
BEAT_S = 20  # how often the holder rewrites its heartbeat
STALE_S = 90  # a heartbeat older than this (several missed beats) is a dead driver's


class LockError(SpecError):
    """Another live driver holds the sweep directory; the message names it."""


def _alive(holder: dict) -> bool:
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder.get("pid", -1)), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError):
            return True  # running under another user: alive
        return True
    return time.time() - float(holder.get("heartbeat", 0)) < STALE_S


class DriverLock:
    """`with DriverLock(sweep_dir): …` holds the sweep for this process; `taken_over` names a dead holder."""

    def __init__(self, sweep_dir: str) -> None:
        self.path = layout.SweepDir(sweep_dir).lock
        self.me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex,
        }
        self.taken_over: dict | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _holder(self) -> dict | None:
        if not store.exists(self.path):
            return None
        try:
            return json.loads(store.read_text(self.path))
        except (OSError, ValueError):
            return {}  # half-written or garbled: nobody can be shown to hold it

    def _refused(self, holder: dict) -> LockError:
        return LockError(
            f"sweep {self.path.rsplit('/', 2)[-2]!r} is being run by another driver (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('started')}): wait for it to end or stop it; a driver that "
            f"died leaves a lock the next run takes over ({self.path})"
        )

    def write(self) -> None:
        """(Re)write this driver's lock with a fresh heartbeat (also after --overwrite emptied the directory)."""
        store.write_text(self.path, json.dumps({**self.me, "heartbeat": time.time()}))

    def acquire(self) -> DriverLock:
        holder = self._holder()
        if holder and holder.get("token") != self.me["token"] and _alive(holder):
            raise self._refused(holder)
        self.taken_over = holder or None
        self.write()
        if (self._holder() or {}).get("token") != self.me["token"]:  # another driver's write won the race
            raise self._refused(self._holder() or {})
        self._beat = threading.Thread(target=self._beats, name="driver-lock", daemon=True)
        self._beat.start()
        return self

    def _beats(self) -> None:
        while not self._stop.wait(BEAT_S):
            try:
                self.write()
            except OSError:  # a storage hiccup: the next beat tries again
                pass

    def release(self) -> None:
        self._stop.set()
        if (self._holder() or {}).get("token") == self.me["token"]:
            store.delete_file(self.path)

    def __enter__(self) -> DriverLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
