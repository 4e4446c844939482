"""Helpers shared by the benchmark scripts: repository root, config, machine facts."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_src() -> None:
    """Make ``massact`` importable from the repository's src/ (no install needed)."""
    src = str(ROOT / "src")
    if src not in sys.path:
        sys.path.insert(0, src)


def load_config(configfiles=(), validate: bool = True) -> dict:
    """config/config.yaml with each ``--configfile`` over it, as the Snakefile layers them
    (massact.config.overlay), schema defaults filled."""
    import yaml

    use_src()
    from massact.config import overlay

    cfg = overlay(*(yaml.safe_load(Path(f).read_text()) or {}
                    for f in [ROOT / "config" / "config.yaml", *(configfiles or ())]))
    if validate:
        try:
            from massact.config import validate as check

            cfg = check(cfg)
        except Exception as e:  # report, but keep the raw merged config usable
            print(f"warning: config not validated ({type(e).__name__}: {e})", file=sys.stderr)
    return cfg


def machine() -> dict:
    """What the numbers were measured on."""
    info = {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "platform": platform.platform(), "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg(), "time": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    try:
        info["lscpu"] = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()[:20]
    except OSError:
        info["lscpu"] = []
    try:
        mem = open("/proc/meminfo").read().splitlines()[:3]
        info["meminfo"] = mem
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads_default"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    try:
        out = subprocess.run(["ldd", "--version"], capture_output=True, text=True).stdout
        info["glibc"] = out.splitlines()[0] if out else None
    except OSError:
        pass
    return info
