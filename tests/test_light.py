"""Light processes: parsing the workflow, and the jobs that only read tables and draw,
import neither torch nor transformers (each import costs seconds per process)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers")

PARSE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1),
                      config_settings=ConfigSettings(configfiles=[Path(f) for f in sys.argv[1:]]),
                      snakefile=Path("Snakefile"), workdir=Path("."))
    n_rules = len(wf._workflow.rules)
print(json.dumps({"rules": n_rules, "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


@pytest.mark.parametrize("configfile", [None, "config/test.yaml", "config/paper.yaml"])
def test_parsing_the_workflow_imports_no_torch(configfile):
    args = [configfile] if configfile else []
    proc = subprocess.run([sys.executable, "-c", PARSE, *args], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rules"] > 20
    assert out["loaded"] == []


def _library_imports(script: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("massact"):
            if node.module == "massact":
                mods |= {f"massact.{a.name}" for a in node.names}
            else:
                mods.add(node.module)
    return mods


#: Jobs that read tables and write tables or figures.
LIGHT = ["components_figure", "components_table", "cumulative_figure", "feature3d_compare",
         "feature3d_figure", "head_figures", "head_scores", "head_selection", "head_tables",
         "intervention_table", "layerwise_figure", "layerwise_table", "massive_table",
         "models_layerwise", "models_table", "pruning_figures", "pruning_overview",
         "pruning_summary", "resolved_config"]


@pytest.mark.parametrize("name", LIGHT)
def test_table_and_figure_jobs_import_no_torch(name):
    mods = sorted(_library_imports(ROOT / "scripts" / f"{name}.py") | {"massact.runtime"})
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r})\n"
            + "".join(f"import {m}\n" for m in mods)
            + "from massact.runtime import set_threads; set_threads(1)\n"
            + f"print([m for m in {HEAVY!r} if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", (name, mods)


def test_threads_set_before_torch_is_imported_reach_torch():
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from massact.runtime import set_threads; set_threads(1)\n"
            "import torch; print(torch.get_num_threads())") % str(ROOT / "src")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "1"


def test_jobs_import_this_checkouts_library_first(tmp_path):
    """As a job runs: another checkout's src/ (an editable install) comes first on the
    path and this checkout's src/ only later (where Snakemake appends it); the job must
    still import this checkout's library."""
    other = tmp_path / "other" / "massact"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise ImportError('the other checkout')\n")
    code = (f"import sys; sys.path[:0] = [{str(other.parent)!r}]; "
            f"sys.path.append({str(ROOT / 'src')!r}); sys.path.append({str(ROOT / 'scripts')!r})\n"
            "import _srcpath\nimport massact.errors\nprint(massact.errors.__file__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(ROOT / "src" / "massact" / "errors.py")
