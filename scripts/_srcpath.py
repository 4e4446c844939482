"""Put this checkout's src/ first on sys.path, so that every environment a rule runs
in (the project's venv, a pinned conda env, a cluster node) imports the same library.

First, not merely present: Snakemake appends its own search paths (this checkout's src/
among them) after the environment's, where an installed copy of the package from another
checkout (an editable install's path) would win."""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
while SRC in sys.path:
    sys.path.remove(SRC)
sys.path.insert(0, SRC)
