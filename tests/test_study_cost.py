"""benchmarks/study_cost.py's block-forward count against a count by hand: a run's
benchmark files and pruning sets laid out as the workflow writes them."""

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import study_cost  # noqa: E402

L, A, H = 4, 4 * 48, 4 * 32  # random-llama: blocks; analysis and held-out tokens per pass


@pytest.fixture
def run(tmp_path):
    """A finished random-llama run of config/test.yaml: the baseline, the pruning job (two
    sets: top from block 2, pair from block 1), the intervention at layer 2 and at every
    layer at once."""
    config = study_cost.load_config([ROOT / "config/test.yaml"])
    config["run"] = ["random-llama"]
    results = tmp_path / "results"
    for rule, stem in [("extract_activations", "random-llama"),
                       ("perplexity_baseline", "random-llama"),
                       ("prune_heads", "random-llama"),
                       ("intervention", "random-llama_2"),
                       ("intervention", "random-llama_every")]:
        d = results / "benchmarks" / "rules" / rule
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{stem}.tsv").write_text("s\tmax_rss\tcpu_time\tmean_load\n1\t1\t1\t0\n")
    for e, heads in (("top", [[2, 0], [3, 1]]), ("pair", [[1, 0], [2, 3]])):
        d = results / "random-llama" / "pruning" / e
        d.mkdir(parents=True)
        (d / "heads.yaml").write_text(yaml.safe_dump({"heads": heads}))
    return results, config


def test_block_forwards_by_hand(run):
    results, config = run
    b = study_cost.block_forwards(results, config, study_cost.collect(results, config))
    b = b["random-llama"]
    runs = 4  # two modes, massive and control
    analysis_need = (L * A                       # the baseline pass
                     + ((L - 2) + (L - 1)) * A   # top and pair from their blocks
                     + 3 * A + L * A)            # the means, up to layer 2 / every layer
    held_need = L * H + ((L - 2) + (L - 1)) * H + runs * (L - 2) * H + runs * L * H
    assert b["kinds"]["analysis"][1] == analysis_need
    assert b["kinds"]["held-out"][1] == held_need
    # made: + the pruning job's recording (every block), the interventions in full passes
    assert b["kinds"]["analysis"][0] == analysis_need + L * A
    assert b["kinds"]["held-out"][0] == held_need + L * H + runs * 2 * H
    assert b["kinds"]["sweep"] == (0, 0, 0)
    assert b["head_windows"] == 4 * (1 + 2 + runs + runs)
    assert b["needed"] == analysis_need + held_need


def test_a_start_block_that_does_not_fit_starts_lower(run, monkeypatch):
    """The prefix memory holds one start block's inputs: the later one (2) is kept, pair
    (block 1) runs a full pass, as massact.prefix.PrefixCache decides."""
    results, config = run
    models = results.parent / "resources" / "models" / "random-llama"
    models.mkdir(parents=True)
    (models / "config.json").write_text(json.dumps({"hidden_size": 64}))
    (models / "source.json").write_text(json.dumps({"dtype": "float32"}))
    import massact.sweeps

    monkeypatch.setattr(massact.sweeps, "PREFIX_BYTES", (A + H) * 64 * 4 * 3 // 2)
    b = study_cost.block_forwards(results, config, study_cost.collect(results, config))
    b = b["random-llama"]
    prune_made = ((L - 2) + L) * A + L * A  # top from 2, pair from 0, the recording
    assert b["kinds"]["analysis"][0] == L * A + prune_made + 3 * A + L * A
