"""Helpers shared by the benchmark scripts: repository root, config, machine facts."""

from __future__ import annotations

import copy
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


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``, nested dicts key by key (as Snakemake does)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(configfiles=(), validate: bool = True) -> dict:
    """config/config.yaml deep-merged with each ``--configfile`` in turn, schema defaults filled."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text()) or {}
    for f in configfiles or ():
        cfg = deep_merge(cfg, yaml.safe_load(Path(f).read_text()) or {})
    if validate:
        use_src()
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
