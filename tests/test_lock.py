"""One driver per sweep directory (sweeps/lock.py): refused while the holder lives, taken over after."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from conftest import moto_s3, sweep_args

from sweeps.lock import LOCK, DriverLock, LockError
from trainables import store


def _holder(path, **fields) -> None:
    store.write_text(f"{path}/{LOCK}", json.dumps({"host": socket.gethostname(), "started": "then", **fields}))


@pytest.fixture()
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_driver_on_this_host_keeps_the_sweep_and_a_dead_ones_lock_is_taken_over(tmp_path, live_pid):
    _holder(tmp_path, pid=live_pid, heartbeat=0)  # same host: the pid decides, not the heartbeat
    with pytest.raises(LockError, match=rf"another driver \(pid {live_pid} on {socket.gethostname()}, since then\)"):
        DriverLock(str(tmp_path)).acquire()
    dead = _dead_pid()
    _holder(tmp_path, pid=dead, heartbeat=time.time())
    with DriverLock(str(tmp_path)) as lock:
        assert lock.taken_over["pid"] == dead
        held = json.loads(store.read_text(f"{tmp_path}/{LOCK}"))
        assert held["token"] == lock.me["token"]
        with pytest.raises(LockError):  # and now this driver holds it against the next
            DriverLock(str(tmp_path)).acquire()
    assert not (tmp_path / LOCK).exists()  # released at the end


def test_another_hosts_driver_counts_by_its_heartbeat_and_a_garbled_lock_is_nobodys(tmp_path):
    _holder(tmp_path, host="elsewhere", pid=1, heartbeat=time.time())
    with pytest.raises(LockError, match="on elsewhere"):
        DriverLock(str(tmp_path)).acquire()
    _holder(tmp_path, host="elsewhere", pid=1, heartbeat=time.time() - 3600)
    with DriverLock(str(tmp_path)) as lock:
        assert lock.taken_over["host"] == "elsewhere"
    (tmp_path / LOCK).write_text("{half a json")
    with DriverLock(str(tmp_path)) as lock:
        assert lock.taken_over is None


def test_a_second_driver_is_refused_at_the_door_and_loses_nothing(tmp_path, tiny_config, live_pid, capsys):
    from sweeps.cli import main

    sweep = tmp_path / "r" / "held"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text("{}")  # what --overwrite would delete
    _holder(sweep, pid=live_pid, heartbeat=time.time())
    args = sweep_args(tmp_path / "r", tiny_config, "--mode", "quick", "--max-runs", "1", "--folds", "1",
                      "--seeds", "1", "--name", "held", "--overwrite")  # fmt: skip
    assert main("tft", args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning:")]
    assert len(err) == 1 and err[0].startswith("error: sweep 'held' is being run by another driver"), err
    assert str(live_pid) in err[0]
    assert (sweep / "sweep.json").read_text() == "{}"


def test_the_lock_holds_on_s3(monkeypatch):
    with moto_s3("locks") as (env, _):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        path = "s3://locks/res/sweep"
        _holder(path, host="elsewhere", pid=1, heartbeat=time.time())
        with pytest.raises(LockError, match="on elsewhere"):
            DriverLock(path).acquire()
        _holder(path, host="elsewhere", pid=1, heartbeat=time.time() - 3600)
        with DriverLock(path) as lock:
            assert lock.taken_over["host"] == "elsewhere"
            assert json.loads(store.read_text(f"{path}/{LOCK}"))["token"] == lock.me["token"]
        assert not store.exists(f"{path}/{LOCK}")
