"""The conda envs and the pip lock agree; torch is pinned exactly. envs/dev.yaml is the
whole lock with the SLURM executor (requirements-slurm.txt); envs/massact.yaml, the jobs'
env, holds what the code imports and everything that requires, and no development tool."""

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
JOB_ENV = ROOT / "envs" / "massact.yaml"
DEV_ENV = ROOT / "envs" / "dev.yaml"
# The platform the envs are for: markers are evaluated here, not on the test's machine.
PLATFORM = {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": "x86_64", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "python_version": "3.11",
            "python_full_version": "3.11.0", "extra": ""}


def lock(name: str = "requirements.txt"):
    lines = (ROOT / name).read_text().splitlines()
    return sorted(l.strip() for l in lines if l.strip() and not l.startswith("#"))


def pins(lines) -> dict[str, str]:
    """{canonical name: version} of ``name==version`` lines."""
    return {canonicalize_name(l.split("==")[0]): l.split("==")[1] for l in lines}


def env(path: Path) -> tuple[list[str], list[str]]:
    """(conda packages, pip lines) of a conda environment file."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    conda = [d for d in deps if isinstance(d, str)]
    return conda, pip


def requires(name: str) -> set[str]:
    """The installed distribution's requirements on PLATFORM, extras not requested."""
    try:
        reqs = md.distribution(name).requires or []
    except md.PackageNotFoundError:
        raise AssertionError(f"{name} is not installed: install the lock to run this test")
    out = set()
    for r in map(Requirement, reqs):
        if r.marker is None or r.marker.evaluate(PLATFORM):
            out.add(canonicalize_name(r.name))
    return out


def imported_modules() -> set[str]:
    """Third-party top-level modules imported anywhere in src/massact and scripts/,
    inside functions too."""
    mods = set()
    files = sorted((ROOT / "src" / "massact").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names
            and m not in ("massact", "_srcpath", "snakemake")}


def test_envs_pin_the_lock():
    """Every pin of every env is exact and is the lock's (or the SLURM executor's)."""
    locked = pins(lock() + lock("requirements-slurm.txt"))
    for path in sorted((ROOT / "envs").glob("*.yaml")):
        _, pip = env(path)
        for line in pip:
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=<>~*,; ]+", line), f"{path.name}: {line}"
            name, version = line.split("==")
            assert locked.get(canonicalize_name(name)) == version, \
                f"{path.name}: {line}, the lock pins {locked.get(canonicalize_name(name))}"
        assert len(pins(pip)) == len(pip), f"{path.name} pins a package twice"


def test_dev_env_is_the_whole_lock():
    _, pip = env(DEV_ENV)
    assert sorted(pip) == sorted(lock() + lock("requirements-slurm.txt"))


def test_the_slurm_executor_is_apart_and_needs_nothing_more():
    """Snakemake imports every executor plugin it finds at start-up (the SLURM one imports
    pandas), so the lock leaves the SLURM executor out; requirements-slurm.txt adds it, and
    everything it requires is in both locks already."""
    slurm = pins(lock("requirements-slurm.txt"))
    assert set(slurm) == {"snakemake-executor-plugin-slurm",
                          "snakemake-executor-plugin-slurm-jobstep"}
    for name in ("requirements.txt", "requirements-cuda.txt"):
        assert not {n for n in pins(lock(name)) if n.startswith("snakemake-executor-plugin")}
    try:
        need = {d: requires(d) for d in slurm}
    except AssertionError:  # CI installs it after the tests, then checks it against the lock
        pytest.skip("the SLURM executor is not installed (python -m pip install -r "
                    "requirements-slurm.txt)")
    for name in ("requirements.txt", "requirements-cuda.txt"):
        have = set(pins(lock(name))) | set(slurm)
        for dist, reqs in need.items():
            assert reqs <= have, (name, dist, sorted(reqs - have))


def test_job_env_is_closed_under_requirements():
    """Everything a pinned package requires is in the env: pinned, or a conda package
    (setuptools, which torch requires and the lock, like pip freeze, leaves out). torch's
    CUDA build's own packages (nvidia-*, cuda-*, triton) need not be: the CPU lock does
    not pin them either."""
    conda, pip = env(JOB_ENV)
    have = set(pins(pip)) | {canonicalize_name(re.split(r"[=<>!~ ]", c)[0]) for c in conda}
    cuda_lines = [l.strip() for l in (ROOT / "requirements-cuda.txt").read_text().splitlines()
                  if l.strip() and not l.startswith("#")]
    cuda_only = set(pins(cuda_lines)) - set(pins(lock())) - {"setuptools"}
    missing = []
    for name in sorted(pins(pip)):
        for req in sorted(requires(name) - have):
            if not (name == "torch" and req in cuda_only):
                missing.append(f"{name} requires {req}")
    assert not missing, missing


def test_job_env_has_every_imported_distribution():
    pinned = set(pins(env(JOB_ENV)[1]))
    dists = md.packages_distributions()
    mods = imported_modules()
    assert {"torch", "transformers", "pandas", "yaml"} <= mods  # the scan finds imports
    missing = []
    for mod in sorted(mods):
        names = {canonicalize_name(d) for d in dists.get(mod, [])}
        if not names & pinned:
            missing.append(f"{mod} ({', '.join(sorted(names)) or 'no installed distribution'})")
    assert not missing, missing


def test_job_env_has_the_declared_dependencies():
    """pyproject.toml's dependencies (accelerate and sentencepiece, which transformers
    imports only when asked for) except snakemake, which the job takes from the Snakemake
    that runs it (see the env's header)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {canonicalize_name(Requirement(d).name) for d in deps} - {"snakemake"}
    assert not declared - set(pins(env(JOB_ENV)[1]))


def test_job_env_leaves_out_the_development_tools():
    pinned = set(pins(env(JOB_ENV)[1]))
    tools = {"snakemake", "pytest", "snakefmt", "black", "playwright"}
    assert not pinned & tools
    assert not {n for n in pinned if n.startswith("snakemake-")}


def test_rules_run_in_the_job_env():
    """Every rule's conda directive is ENV, which is envs/massact.yaml; dev.yaml is no rule's."""
    common = (ROOT / "rules" / "common.smk").read_text()
    assert 'ENV = "../envs/massact.yaml"' in common
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        text = smk.read_text()
        assert "dev.yaml" not in text, smk.name
        for value in re.findall(r"^\s+conda:\s*\n\s+(\S+)", text, flags=re.M):
            assert value == "ENV", f"{smk.name}: conda: {value}"


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
