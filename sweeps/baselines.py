"""Sweep the baselines (random walk, drift, mean, AutoARIMA, AutoETS, AutoTheta): `python sweeps/baselines.py --help`."""

import sys
from pathlib import Path

# Run as a script: make the project importable, and keep sweeps/ itself off the path so its
# file names (toto.py, ...) never shadow the model packages.
sys.path[0] = str(Path(__file__).resolve().parents[1])

if __name__ == "__main__":  # imports inside: worker processes re-import this file cheaply
    from sweeps.cli import exit_now, main

    exit_now(main("baselines"))
