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
