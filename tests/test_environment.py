"""The pinned conda env and the pip lock agree; torch is pinned exactly."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def lock():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return sorted(l.strip() for l in lines if l.strip() and not l.startswith("#"))


def test_envs_pin_the_lock():
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        deps = yaml.safe_load(env.read_text())["dependencies"]
        pip = next(d["pip"] for d in deps if isinstance(d, dict))
        assert sorted(pip) == lock(), env.name


def test_every_pin_is_exact():
    for line in lock():
        assert "==" in line and not any(c in line for c in "<>~*"), line
    assert "torch==2.13.0" in lock()


def test_every_rule_is_complete():
    """Each rule has log, benchmark, threads, mem_mb and conda (DESIGN conventions)."""
    import re

    for smk in sorted((ROOT / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in re.split(r"\n(?=rule |checkpoint )", text)[1:]:
            name = block.split(":")[0]
            if "localrule" in block or name.startswith("rule all"):
                continue
            for key in ("log:", "benchmark:", "threads:", "mem_mb=", "conda:"):
                assert key in block, f"{smk.name}: {name} lacks {key}"


def test_cuda_lock_is_the_cpu_lock_plus_the_cuda_build():
    """requirements-cuda.txt pins every package of requirements.txt at the same version,
    and adds only what the CUDA build of torch brings (nvidia-*, cuda-*, triton, and the
    setuptools torch's CUDA wheel requires), each pinned exactly."""
    cuda_lines = (ROOT / "requirements-cuda.txt").read_text().splitlines()
    cuda = sorted(l.strip() for l in cuda_lines if l.strip() and not l.startswith("#"))
    for line in cuda:
        assert "==" in line and not any(c in line for c in "<>~*"), line
    cpu = lock()
    missing = [l for l in cpu if l not in cuda]
    assert not missing, f"the CUDA lock differs from the CPU lock on {missing}"
    extra = {l.split("==")[0] for l in cuda} - {l.split("==")[0] for l in cpu}
    assert extra and all(n.startswith(("nvidia-", "cuda-")) or n in ("triton", "setuptools")
                         for n in extra), sorted(extra)
