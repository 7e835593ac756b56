"""Sweep Toto (Datadog): `python sweeps/toto.py --help`."""

import sys
from pathlib import Path

# Run as a script: make the project importable, and keep sweeps/ itself off the path so its
# file names (toto.py, ...) never shadow the model packages.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from sweeps.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("toto"))
