"""The README's commands, as written: each one is run here or by CI (.ci/run)."""

import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT, copy_workflow

README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def commands() -> list[str]:
    """Every command line in the README's ```bash blocks, comments stripped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def inline_commands() -> list[str]:
    """Commands quoted in the README's text (`snakemake …`)."""
    return re.findall(r"`(snakemake [^`]+)`", README)


SNAKEMAKE = sorted({c for c in commands() + inline_commands() if c.startswith("snakemake ")})


def test_the_readme_shows_the_commands_a_user_needs():
    """Run, a figure by path (and with another config, target first), the report, the test
    run, the unlock: each is in the README, so each is planned below."""
    joined = "\n".join(SNAKEMAKE)
    for pattern in (r"^snakemake --cores all$", r"results/\S+\.png$",
                    r"results/\S+\.png --configfile config/test\.yaml$", r"--report",
                    r"--configfile config/test\.yaml$", r"--unlock"):
        assert re.search(pattern, joined, re.M), pattern


def test_the_readme_is_short_and_starts_with_the_start():
    lines = README.splitlines()
    assert len(lines) <= 250
    heads = [l for l in lines if l.startswith("## ")]
    assert heads[:3] == ["## Install", "## Run", "## Test"]


def test_install_and_test_commands_are_what_ci_runs():
    cmds = commands()
    ci = [l.strip() for l in CI.splitlines() if not l.strip().startswith("#")]
    for c in ("python3 -m venv .venv && . .venv/bin/activate",
              "python -m pip install -r requirements.txt -e .", "python -m pytest"):
        assert c in cmds, c
    assert "python3 -m venv .venv" in ci and ". .venv/bin/activate" in ci
    assert "python -m pip install -r requirements.txt -e ." in ci
    assert "python -m pytest" in ci
    # the marker the fast command selects on exists
    assert 'python -m pytest -m "not slow"' in cmds
    assert "slow:" in (ROOT / "pyproject.toml").read_text()


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("readme"))


@pytest.mark.parametrize("cmd", SNAKEMAKE)
def test_every_snakemake_command_plans(wf, cmd):
    """Each snakemake command of the README parses and plans (a dry run) in a fresh
    checkout; the unlock runs for real. The runs themselves are the end-to-end tests'
    (tests/test_workflow.py: the test config, a target by path, the report, the unlock)."""
    args = shlex.split(cmd)[1:]
    if "--report" in args:  # a report needs a finished run: tests/test_workflow.py
        args = [a for a in args if a != "--report" and not a.endswith(".html")]
    extra = [] if "--unlock" in args else ["--dry-run", "--quiet", "rules"]
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args, *extra], cwd=wf,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    if extra:
        out = proc.stdout + proc.stderr
        assert "Job stats:" in out and "Traceback" not in out
        total = int(re.search(r"^total\s+(\d+)$", out, re.M)[1])
        if any(a.startswith("results/") for a in args):  # one figure: its own few jobs
            assert re.search(r"^\w+_figures?\s+1$", out, re.M), out[-1500:]
            assert total <= 12, out[-1500:]
