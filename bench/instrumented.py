"""Run ``tokenyard`` (its arguments: ``serve ...``) in this interpreter with a measurement
installed, and write what it measured, at exit, to the file an environment variable names.
Shared by ``gc_time.py`` and ``timeline.py``, each the ``--gateway-cmd`` of a ``run.py`` row;
``PYTHONPATH=<tree>/src`` measures another build."""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


def serve(variable: str, install: Callable[[], None], report: Callable[[], str]) -> NoReturn:
    path = os.environ.get(variable)
    if not path:
        sys.exit(f"set {variable} to the file to write")
    install()
    atexit.register(lambda: Path(path).write_text(report()))
    from tokenyard.cli.main import main

    sys.exit(main())
