import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("MASSACT_NO_PROGRESS", "1")

ARCHS = ["gpt2", "llama", "gemma3"]


def materialize_random(base: Path, archs) -> dict:
    """Tiny random models of ``archs``, materialized under ``base``: {arch: dir}."""
    from massact.sources import materialize_model

    for a in archs:
        materialize_model(f"random-{a}", {"source": "random", "arch": a, "seed": 0}, base / a,
                          base / "downloads")
    return {a: base / a for a in archs}


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """Materialized tiny random models of the three architectures: {arch: dir}."""
    return materialize_random(tmp_path_factory.mktemp("models"), ARCHS)


@pytest.fixture(params=ARCHS)
def tiny(request, tiny_dirs):
    """(arch, model, tokenizer) of a tiny random model, SDPA attention."""
    from massact.sources import load_model

    model, tok = load_model(tiny_dirs[request.param])
    return request.param, model, tok


@pytest.fixture
def windows():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (3, 40), generator=g)


WORKFLOW_FILES = ["Snakefile", "rules", "scripts", "config", "schemas", "envs", "report",
                  "profiles", "src", "tests/data"]


def copy_workflow(dest: Path) -> Path:
    """A fresh copy of the workflow, as a user's checkout would be."""
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def snakemake(cwd: Path, *args, check=True, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc
