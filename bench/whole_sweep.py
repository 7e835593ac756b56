"""One `sweeps/tft.py` run as a whole process, timed, with the driver's peak memory (for the benches)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What sweeps/tft.py runs, then this process's peak memory (the entry script skips atexit on exit).
WRAPPER = """
import os, resource, sys
sys.path.insert(0, os.getcwd())
from sweeps.cli import main
code = main("tft", sys.argv[1:])
print(f"PEAK_RSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)
os._exit(code)
"""


def timed_sweep(args: list[str], log: str, what: str) -> tuple[float, float]:
    """(wall seconds, driver peak MB) of `python sweeps/tft.py ARGS` on a fresh local Ray; its output
    goes to `log` (a file, not a pipe: Ray's own processes inherit a pipe and hold it open for
    seconds after the sweep has returned). SystemExit naming `what` if it fails."""
    with open(log, "w") as f:
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-c", WRAPPER, *args], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                               env={**os.environ, "RAY_ADDRESS": "local"})  # fmt: skip
        wall = time.perf_counter() - start
    with open(log) as f:
        out = f.read()
    if code != 0:
        raise SystemExit(f"error: the {what} sweep failed:\n{out[-3000:]}")
    peak = [int(line.split()[1]) for line in out.splitlines() if line.startswith("PEAK_RSS_KB")]
    return wall, peak[-1] / 1024 if peak else float("nan")
