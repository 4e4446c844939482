"""The GPT-2 study through the Hugging Face code path, offline, on a simulated hub cache.

The cache (tests/hubcache.py) holds a GPT-2-small-shaped model with random weights, GPT-2's
real tokenizer and wikitext-like text, laid out as huggingface_hub and datasets write it;
the workflow finds them with HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 through its own
`hf` model and corpus sources, as it would on a machine with the hub.
"""

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

import hubcache
from conftest import ROOT, copy_workflow, snakemake

pytestmark = pytest.mark.slow  # downloads GPT-2's tokenizer files through pip's index

SCALED = ["--configfile", "config/gpt2.yaml", "tests/data/gpt2-scaled.yaml"]
PUBLISHED = {"top": [[2, 7], [5, 1], [6, 1]], "bottom": [[0, 1], [4, 11], [11, 8]]}
# every rule of the GPT-2 study, with its number of jobs (one model; its nine head sets in one pruning job)
STUDY = {
    "materialize_model": 1, "materialize_corpus": 1, "sample_windows": 1, "sample_heldout": 1,
    "extract_activations": 1, "prompt_features": 1, "feature3d_figure": 2,
    "layerwise_figure": 1, "layerwise_table": 1, "massive_table": 1, "head_scores": 1,
    "head_figures": 1, "head_tables": 1, "head_selection": 1, "prune_heads": 1,
    "pruning_figures": 1, "pruning_summary": 1, "pruning_overview": 1, "prune_prompt": 2,
    "feature3d_compare": 2, "perplexity_baseline": 1, "sweep_baseline": 1,
    "component_ablations": 1, "components_figure": 1, "components_table": 1,
    "intervention": 1, "intervention_every_layer": 1, "intervention_table": 1,
    "cumulative_pruning": 1,
    "cumulative_figure": 1, "models_layerwise": 1, "models_table": 1, "resolved_config": 1,
    "all": 1,
}


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """(HF_HOME, weights file) of the simulated cache, built once per test session."""
    home = tmp_path_factory.mktemp("hf-home")
    weights = hubcache.build(home, ROOT / "resources/downloads/openai-whisper",
                             ROOT / "tests/data/corpus", tmp_path_factory.mktemp("hub-work"))
    return home, weights


def planned(wf, env, *args) -> dict[str, int]:
    out = snakemake(wf, "-n", "--quiet", "rules", *args, env=env).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.fixture(scope="module")
def study(hub, tmp_path_factory):
    """The scaled GPT-2 study, run once through snakemake with the hub offline."""
    home, _ = hub
    wf = copy_workflow(tmp_path_factory.mktemp("gpt2-wf"))
    env = hubcache.offline_env(home)
    plan = planned(wf, env, *SCALED)
    snakemake(wf, *SCALED, env=env)
    return wf, env, plan


def test_the_tokenizer_is_gpt2s(hub):
    """The cache's tokenizer is GPT-2's byte-level BPE: its well-known ids come out."""
    from transformers import AutoTokenizer

    home, _ = hub
    snap = next((home / "hub/models--openai-community--gpt2/snapshots").iterdir())
    tok = AutoTokenizer.from_pretrained(snap)
    assert len(tok) == 50257 and tok.eos_token == "<|endoftext|>"
    assert tok("Hello world the")["input_ids"] == [15496, 995, 262]


def test_every_rule_of_the_study_ran(study):
    wf, env, plan = study
    assert plan == STUDY
    for rule in STUDY:
        if rule != "all":  # the every-layer intervention logs under its stage's name
            stage = {"intervention_every_layer": "intervention"}.get(rule, rule)
            logs = wf / "results/logs" / stage
            assert list(logs.glob("*.log")), rule
    for log in (wf / "results/logs").rglob("*.log"):
        assert "Traceback" not in log.read_text(), log
    for f in ("figures/layerwise.png", "figures/head_scores.png", "figures/pruning_top.png",
              "figures/pruning_summary.png", "figures/components.png",
              "figures/cumulative_pruning.png", "figures/feature3d_compare_layer2.png",
              "tables/pruning_summary.md", "tables/components.md", "tables/intervention.md",
              "tables/heads_top.md", "tables/layerwise.md"):
        assert (wf / "results/gpt2" / f).stat().st_size > 0, f
    assert planned(wf, env, *SCALED) == {}  # a second run has nothing to do


def test_the_published_head_sets_are_pruned_as_listed(study):
    wf, _, _ = study
    root = wf / "results/gpt2"
    selection = yaml.safe_load((root / "heads/selection.yaml").read_text())
    for name, heads in PUBLISHED.items():
        run = yaml.safe_load((root / f"pruning/{name}/heads.yaml").read_text())
        assert run["heads"] == heads and selection[name] == heads
        assert run["rule"] == {"heads": heads}  # replaced, not merged with {top: 3}
    # the recomputed sets come from this run's scores: the top head of layers 2, 5 and 6
    scores = pq.read_table(root / "heads/scores.parquet").to_pandas()
    best = [[int(r.layer), int(r.head)] for r in
            scores[scores["rank_in_layer"] == 1].sort_values("layer").itertuples()
            if r.layer in (2, 5, 6)]
    assert selection["top_scored"] == best


def test_the_hub_files_were_loaded(study, hub):
    """The materialized model holds the cache's weights, under GPT-2's tokenizer; the
    corpus holds the cached dataset's test split."""
    import torch
    from safetensors.torch import load_file

    from massact.sources import load_model

    wf, _, _ = study
    home, weights = hub
    model, tok = load_model(wf / "resources/models/gpt2")
    ref = load_file(weights)
    got = model.transformer.state_dict()
    for name, tensor in ref.items():
        if not name.endswith("attn.bias"):  # the causal-mask buffers are not weights
            assert torch.equal(got[name], tensor), name
    assert torch.equal(model.lm_head.weight, ref["wte.weight"])  # tied, as in GPT-2
    info = json.loads((wf / "resources/models/gpt2/source.json").read_text())
    refs = home / "hub/models--openai-community--gpt2/refs/main"
    assert info["commit"] == refs.read_text() and info["source"]["revision"] == "main"
    assert tok("Hello world")["input_ids"] == [15496, 995]
    corpus = pq.read_table(wf / "resources/corpus/wikitext2.parquet").to_pydict()
    lines = hubcache.wikitext_lines(ROOT / "tests/data/corpus")
    assert corpus["text"] == ["\n\n".join(lines)]
    samples = pq.read_table(wf / "results/gpt2/samples.parquet").to_pydict()
    for ids in samples["input_ids"]:  # windows are GPT-2 tokens of that text
        assert tok.decode(ids) in corpus["text"][0]


def test_a_fresh_clone_plans_the_full_study(tmp_path):
    """`snakemake -n --configfile config/gpt2.yaml` needs neither hub nor cache."""
    wf = copy_workflow(tmp_path)
    plan = planned(wf, hubcache.offline_env(tmp_path / "empty"), "--configfile",
                   "config/gpt2.yaml")
    assert plan["prune_heads"] == 1 and plan["materialize_model"] == 1


# ------------------------------------------------------------------ failure modes
def failing_run(wf, env, target, overlay: dict):
    (wf / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    proc = snakemake(wf, target, *SCALED, "overlay.yaml", env=env, check=False)
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def no_partial_output(directory):
    return not directory.exists() or not [p for p in directory.iterdir()]


def test_a_revision_not_in_the_cache(hub, tmp_path):
    home, _ = hub
    wf = copy_workflow(tmp_path)
    out = failing_run(wf, hubcache.offline_env(home), "resources/models/gpt2",
                      {"models": {"gpt2": {**GPT2_ENTRY, "revision": "v2.0"}}})
    assert "model 'gpt2'" in out and "revision 'v2.0'" in out
    assert "holds openai-community/gpt2 at revision main, not at 'v2.0'" in out
    assert "hf download openai-community/gpt2 --revision v2.0" in out
    assert no_partial_output(wf / "resources/models")


def test_a_dataset_configuration_not_in_the_cache(hub, tmp_path):
    home, _ = hub
    wf = copy_workflow(tmp_path)
    entry = {"source": "hf", "dataset": "Salesforce/wikitext", "config": "wikitext-103-raw-v1",
             "split": "test"}
    out = failing_run(wf, hubcache.offline_env(home), "resources/corpus/wikitext2.parquet",
                      {"corpora": {"wikitext2": entry}})
    assert "corpus 'wikitext2'" in out and "configuration 'wikitext-103-raw-v1'" in out
    assert "holds Salesforce/wikitext with configuration wikitext-2-raw-v1" in out
    assert "load_dataset('Salesforce/wikitext', 'wikitext-103-raw-v1', split='test')" in out
    assert no_partial_output(wf / "resources/corpus")


def test_a_cache_with_the_model_but_no_tokenizer(hub, tmp_path):
    """transformers alone would build an empty tokenizer from such a snapshot."""
    _, weights = hub
    home = tmp_path / "hf-home"
    hubcache.gpt2_repo(home, weights, tokenizer=None)
    wf = copy_workflow(tmp_path / "wf")
    out = failing_run(wf, hubcache.offline_env(home), "resources/models/gpt2", {})
    assert "model 'gpt2'" in out and "lacks a tokenizer" in out
    assert "hf download openai-community/gpt2 --revision main" in out
    assert no_partial_output(wf / "resources/models")


GPT2_ENTRY = {"source": "hf", "repo": "openai-community/gpt2", "n_layers": 12, "n_heads": 12,
              "context": 1024}


def test_no_cache_at_all(tmp_path):
    wf = copy_workflow(tmp_path)
    out = failing_run(wf, hubcache.offline_env(tmp_path / "empty"), "resources/models/gpt2", {})
    assert "does not hold openai-community/gpt2" in out and "hf download" in out
    assert no_partial_output(wf / "resources/models")


def test_mask_buffers_are_in_the_weights_file(hub):
    """The fixture's weights file is laid out as GPT-2's (base-model names, mask buffers)."""
    from safetensors import safe_open

    _, weights = hub
    with safe_open(weights, "pt") as f:
        keys = set(f.keys())
    assert "wte.weight" in keys and "h.11.attn.bias" in keys and "lm_head.weight" not in keys
    assert not any(k.startswith("transformer.") for k in keys)
    with safe_open(weights, "pt") as f:
        assert np.count_nonzero(f.get_tensor("h.0.attn.c_attn.bias").numpy()) > 0
