"""The config is validated before any job runs, and errors name the key."""

from pathlib import Path

import pytest
import yaml

from conftest import copy_workflow, snakemake
from massact.config import (components, feature3d_layers, intervention_layers, overlay,
                            validate)
from massact.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.name for p in (ROOT / "config").glob("*.yaml"))


def load(*names):
    """config/config.yaml with the other files over it, as the Snakefile layers them."""
    return overlay(*(yaml.safe_load((ROOT / "config" / n).read_text()) for n in names))


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_are_valid(name):
    validate(load("config.yaml", name))


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("wf"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_file_plans(wf, name):
    """`snakemake -n --configfile config/<name>` on a fresh checkout: no model, no network."""
    proc = snakemake(wf, "-n", "--quiet", "rules", "--configfile", f"config/{name}")
    assert "Job stats" in proc.stdout


def test_later_files_replace_registry_entries_and_head_sets_not_merge_them():
    base = {"heads": {"sets": {"top": {"top": 3}, "random": {"random": 3, "seeds": [0]}},
                      "bootstrap": 10},
            "models": {"m": {"source": "random", "arch": "gpt2", "seed": 0}},
            "corpora": {"c": {"source": "pypi", "package": "p==1", "sha256": "0" * 64,
                              "include": ["*"]}},
            "figures": {"dpi": 100, "log_scale": True}}
    over = {"heads": {"sets": {"top": {"heads": [[1, 2]]}}},
            "models": {"m": {"source": "path", "path": "/x"}},
            "corpora": {"c": {"source": "files", "files": ["a.txt"]}},
            "figures": {"dpi": 60}}
    got = overlay(base, over)
    assert got["heads"]["sets"] == {"top": {"heads": [[1, 2]]}}  # the sets as a whole
    assert got["heads"]["bootstrap"] == 10  # other mappings still merge key by key
    assert got["models"]["m"] == {"source": "path", "path": "/x"}
    assert got["corpora"]["c"] == {"source": "files", "files": ["a.txt"]}
    assert got["figures"] == {"dpi": 60, "log_scale": True}
    assert base["heads"]["sets"]["top"] == {"top": 3}  # the inputs are not modified


def test_snakemake_runs_with_the_replaced_entries(wf):
    """Through snakemake itself: the config the run used (results/config.yaml) holds the
    later file's head set, model and corpus entries as given, and --config still wins."""
    over = {"heads": {"sets": {"top": {"heads": [[1, 0], [3, 2]]}}},
            "models": {"random-llama": {"source": "random", "arch": "gemma3"}},
            "corpora": {"wikitext2": {"source": "files", "files": ["tests/data/corpus/*.txt"]}}}
    (wf / "over.yaml").write_text(yaml.safe_dump(over))
    snakemake(wf, "results/config.yaml", "--configfile", "config/test.yaml", "over.yaml",
              "--config", "device=cpu")
    used = yaml.safe_load((wf / "results/config.yaml").read_text())
    assert used["heads"]["sets"] == {"top": {"heads": [[1, 0], [3, 2]]}}  # not test.yaml's
    assert used["models"]["random-llama"] == {"source": "random", "arch": "gemma3"}
    assert used["corpora"]["wikitext2"] == over["corpora"]["wikitext2"]
    assert used["device"] == "cpu" and used["run"] == ["random-gpt2", "random-llama",
                                                       "random-gemma3"]


def test_defaults_are_filled():
    cfg = load("config.yaml")
    del cfg["extraction"], cfg["figures"]
    validate(cfg)
    assert cfg["extraction"]["topk"] == 10 and cfg["figures"]["dpi"] == 150


def broken(mutate):
    cfg = load("config.yaml", "test.yaml")
    mutate(cfg)
    return cfg


CASES = [
    (lambda c: c["run"].append("nope"), r"run\[3\].*unknown model 'nope'.*known models: .*gemma3"),
    (lambda c: c["sampling"].update(nsamples=0), r"sampling\.nsamples.*minimum of 1"),
    (lambda c: c["sampling"].update(seqlen=100000), r"sampling\.seqlen.*exceeds the context"),
    (lambda c: c["models"]["random-gpt2"].update(feature3d_layers=[9]),
     r"models\.random-gpt2\.feature3d_layers\[0\].*outside the model \(0\.\.3\)"),
    (lambda c: c["models"]["smollm2-135m"].pop("sha256"),
     r"models\.smollm2-135m.*'sha256' is a required property"),
    (lambda c: c["models"]["random-gpt2"].update(source="ftp"),
     r"models\.random-gpt2\.source.*allowed: hf, pypi, random, path"),
    (lambda c: c["models"]["smollm2-135m"].update(sha256="abc"), r"models\.smollm2-135m\.sha256"),
    (lambda c: c.update(corpus="nothing"), r"'corpus'.*unknown corpus 'nothing'"),
    (lambda c: c.update(typo=1), r"<top level>.*typo"),
    (lambda c: c["models"]["random-gpt2"].update(arch="bert"), r"models\.random-gpt2\.arch"),
    (lambda c: c["perplexity"].update(seqlen=49), r"perplexity\.seqlen.*exceeds sampling\.seqlen"),
    (lambda c: c["sweeps"].update(samples=5), r"sweeps\.samples.*exceeds sampling\.nsamples"),
    (lambda c: c["models"]["random-llama"].update(intervention_layers=[4]),
     r"models\.random-llama\.intervention_layers\[0\].*outside the model"),
    (lambda c: c["components"].update(layers=[0, 7]), r"components\.layers\[1\].*outside model"),
    (lambda c: c["components"].update(layers="some"), r"components\.layers"),
    (lambda c: c["cumulative"].update(k=[0]), r"cumulative\.k\[0\]"),
    (lambda c: c["intervention"].update(modes=["half"]), r"intervention\.modes\[0\]"),
    (lambda c: (c["models"].update({"random_gpt2": c["models"]["random-gpt2"]}),
                c["run"].append("random_gpt2")), r"run\[3\].*differ only in"),
    (lambda c: c["models"]["random-gpt2"].update(dtype="float8"),
     r"models\.random-gpt2\.dtype.*allowed: float32, bfloat16, float16"),
    (lambda c: c["models"]["random-gpt2"].update(seqlen=300),
     r"models\.random-gpt2\.seqlen.*300 exceeds the context of model 'random-gpt2' \(256"),
    (lambda c: c["models"]["smollm2-135m"].update(n_params="1.35e8"),
     r"models\.smollm2-135m\.n_params.*write it as 1\.35e\+8"),
    (lambda c: c["models"]["smollm2-135m"].update(n_params="1e9"),
     r"models\.smollm2-135m\.n_params.*write it as 1\.0e\+9"),
    (lambda c: c["pruning"].update(post_norm="half"), r"pruning\.post_norm.*allowed: live, frozen"),
    (lambda c: c["models"]["random-gpt2"].update(device_map="balanced"),
     r"models\.random-gpt2\.device_map.*allowed: auto"),
    (lambda c: c["models"]["random-gpt2"].update(gpus=2),
     r"models\.random-gpt2\.gpus.*need device_map: auto"),
    (lambda c: c.update(model_threads=0), r"model_threads"),
    (lambda c: c.update(model_threads="many"), r"model_threads"),
]


@pytest.mark.parametrize("mutate,pattern", CASES)
def test_bad_config_names_the_key(mutate, pattern):
    with pytest.raises(ConfigError, match=pattern):
        validate(broken(mutate))


def test_feature3d_layers_default_and_configured():
    cfg = validate(load("config.yaml", "test.yaml"))
    assert feature3d_layers(cfg, "smollm2-135m") == [2, 11]
    assert feature3d_layers(cfg, "random-gpt2") == [1, 2]


def test_component_and_intervention_defaults():
    cfg = validate(load("config.yaml", "test.yaml"))
    assert components(cfg, "random-gpt2") == ["attn-all", "mlp-all", "attn-0", "attn-1", "attn-2",
                                             "attn-3", "mlp-0", "mlp-1", "mlp-2", "mlp-3"]
    assert intervention_layers(cfg, "random-gpt2") == [2]  # the middle layer
    assert intervention_layers(cfg, "smollm2-135m") == [11]


def test_window_lengths_per_model():
    """A model's own seqlen overrides sampling.seqlen; held-out and sweep windows are cut
    to it."""
    from massact.config import cut_seqlen, window_seqlen

    cfg = load("config.yaml", "paper.yaml")
    validate(cfg)
    assert window_seqlen(cfg, "llama2-7b") == 4096 and window_seqlen(cfg, "gpt2") == 1024
    assert cut_seqlen(cfg, "gpt2", "perplexity") == 1024
    assert cut_seqlen(cfg, "llama2-7b", "perplexity") == 4096
    assert cut_seqlen(cfg, "gpt2", "sweeps") == 256


def test_job_memory_from_parameters_and_dtype():
    from massact.config import job_mem_mb

    assert job_mem_mb({"source": "hf", "n_params": 6.74e9, "dtype": "float16"}) == int(
        6.74e9 * 2 / 2**20 * 1.2) + 2000
    assert job_mem_mb({"source": "hf", "n_params": 1e9}) == int(4e9 / 2**20 * 1.2) + 2000
    assert job_mem_mb({"source": "hf", "n_params": 1e9, "mem_mb": 900}) == 900  # explicit wins
    assert job_mem_mb({"source": "random"}) == 1000


def test_massive_thresholds_paper_default_and_per_model_override():
    """The paper's thresholds by default; a model may override either one, and only
    its own."""
    from massact.config import massive_thresholds

    cfg = load("config.yaml")
    validate(cfg)
    assert massive_thresholds(cfg, "smollm2-135m") == {"ratio_threshold": 1000,
                                                       "abs_threshold": 100}
    cfg["models"]["gemma3-270m"]["massive"] = {"ratio_threshold": 100}
    validate(cfg)
    assert massive_thresholds(cfg, "gemma3-270m") == {"ratio_threshold": 100,
                                                      "abs_threshold": 100}
    assert massive_thresholds(cfg, "smollm2-135m")["ratio_threshold"] == 1000
    cfg["models"]["gemma3-270m"]["massive"] = {"ratio": 100}
    with pytest.raises(ConfigError, match="models.gemma3-270m.massive"):
        validate(cfg)
