"""Imports started ahead of need, so that their CPU time falls where the sweep would wait anyway."""

from __future__ import annotations

import importlib
import threading


def in_background(names: tuple[str, ...], what: str) -> threading.Thread:
    """Import `names` in a daemon thread named `what` (started); a failure is left for the code
    that imports the module where it is used, which says what is wrong."""

    def imports() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:
                continue

    thread = threading.Thread(target=imports, name=what, daemon=True)
    thread.start()
    return thread
