"""Put this checkout's src/ first on sys.path, so that every environment a rule runs
in (the project's venv, a pinned conda env, a cluster node) imports the same library."""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
