"""The config is validated before any job runs, and errors name the key."""

import copy
from pathlib import Path

import pytest
import yaml

from massact.config import components, feature3d_layers, intervention_layers, validate
from massact.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def load(*names):
    cfg = {}
    for n in names:
        for k, v in yaml.safe_load((ROOT / "config" / n).read_text()).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k] = {**cfg[k], **v}  # snakemake merges config files this way
            else:
                cfg[k] = v
    return cfg


@pytest.mark.parametrize("files", [("config.yaml",), ("config.yaml", "test.yaml"),
                                   ("config.yaml", "gpt2.yaml")])
def test_shipped_configs_are_valid(files):
    validate(load(*files))


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
