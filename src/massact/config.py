"""Configuration validation: the JSON schema first, then what a schema cannot say.

Runs in the Snakefile before any job; every error names the key and what is allowed.
"""

from __future__ import annotations

import copy
import functools
import glob
import os
import re
import sys
from pathlib import Path

import jsonschema
import yaml

from . import selection
from .errors import ConfigError, UserError
from .names import RANDOM_SIZES, component_names  # noqa: F401  (public here too)

#: libyaml's loader where PyYAML was built with it (the wheels are): parsing the config
#: and its schema is part of every `snakemake` start-up
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _fill_defaults(node, schema, root):
    """Insert schema defaults for missing keys (recursively through properties)."""
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        schema = root["definitions"][ref]
    if not isinstance(node, dict):
        return
    for name, sub in schema.get("properties", {}).items():
        if name not in node and "default" in sub:
            node[name] = copy.deepcopy(sub["default"])
        if name in node:
            _fill_defaults(node[name], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name in node:
            if name not in schema.get("properties", {}):
                _fill_defaults(node[name], extra, root)


#: Registry entries: a later config file replaces an entry of the same name whole,
#: rather than merging it field by field (a merged model source would mix the fields
#: of two different definitions).
REPLACED_ENTRIES = (("models",), ("corpora",))
#: Mappings a later config file replaces as a whole: the head sets are the design of a
#: study's pruning experiments, so a study that names its sets gets exactly those, not
#: those plus the default study's.
REPLACED_WHOLE = (("heads", "sets"),)


def overlay(base: dict, *overlays: dict) -> dict:
    """``base`` with each of ``overlays`` merged over it, in order (a new dict).

    Mappings merge key by key, as Snakemake merges ``--configfile`` files, except
    for the entries of the registries in :data:`REPLACED_ENTRIES` (a model, a corpus),
    which a later file replaces whole, and the mappings in :data:`REPLACED_WHOLE` (the
    head sets), which it replaces as a whole. Lists and scalars are replaced.
    """
    out = copy.deepcopy(base)
    for top in overlays:
        _merge(out, copy.deepcopy(top), ())
    return out


def _merge(node: dict, new: dict, path: tuple) -> None:
    for key, value in new.items():
        if path in REPLACED_ENTRIES or (*path, key) in REPLACED_WHOLE or not (
                isinstance(value, dict) and isinstance(node.get(key), dict)):
            node[key] = value
        else:
            _merge(node[key], value, (*path, key))


#: Registry fields that decide a model's materialized files; the rest are study options.
#: (``package_sha256`` is not among them: it verifies the download, the file it yields is
#: pinned by ``sha256``, and a corrected hash must not rebuild the model.)
SOURCE_FIELDS = ("source", "repo", "revision", "packages", "files", "sha256", "arch", "size",
                 "seed", "path", "dtype", "n_layers", "n_heads")
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def materialized_fields(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k in SOURCE_FIELDS}


def job_mem_mb(spec: dict) -> int:
    """Memory (MB) of a job that loads this registry entry's model: ``mem_mb`` if given;
    else, with ``n_params`` declared, its weights in its dtype (× 1.2) plus 2 GB of
    working room; else a default for its source."""
    if "mem_mb" in spec:
        return int(spec["mem_mb"])
    if "n_params" in spec:
        weights = spec["n_params"] * DTYPE_BYTES[spec.get("dtype", "float32")] / 2**20
        return int(weights * 1.2) + 2000
    return {"pypi": 4000, "hf": 4000, "path": 4000, "random": 1000}[spec["source"]]


def model_shape(key: str, spec: dict) -> dict:
    """n_layers, n_heads and context of a registry entry (declared, or derived for random)."""
    if spec["source"] == "random":
        size = spec.get("size", "tiny")
        s = RANDOM_SIZES[size] if isinstance(size, str) else size
        return {"n_layers": s["layers"], "n_heads": s["heads"], "context": s["positions"]}
    return {k: spec[k] for k in ("n_layers", "n_heads", "context")}


def validate(config: dict, schema_path: Path = SCHEMA) -> dict:
    """Validate ``config`` in place (defaults filled in) and return it; raise ConfigError."""
    schema = yaml.load(Path(schema_path).read_text(), Loader=_LOADER)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        e = errors[-1] if errors[-1].absolute_path else errors[0]
        allowed = ""
        if e.validator == "enum":
            allowed = f" (allowed: {', '.join(map(str, e.validator_value))})"
        elif e.validator == "additionalProperties":
            allowed = f" (allowed keys: {', '.join(sorted(e.schema.get('properties', {})))})"
        elif e.validator == "type" and isinstance(e.instance, str) and re.fullmatch(
                r"[0-9.]+[eE][0-9]+", e.instance):
            mantissa, exponent = e.instance.lower().split("e")
            mantissa += "" if "." in mantissa else ".0"
            allowed = f" (YAML reads {e.instance} as text: write it as {mantissa}e+{exponent})"
        raise ConfigError(_key(e.absolute_path), e.message + allowed)
    _fill_defaults(config, schema, schema)
    check_semantics(config)
    return config


def check_semantics(config: dict) -> None:
    models = config["models"]
    for i, key in enumerate(config["run"]):
        if key not in models:
            raise ConfigError(f"run[{i}]", f"unknown model {key!r}; known models: "
                                           f"{', '.join(sorted(models))}")
    for name in list(models) + list(config["corpora"]):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ConfigError(name, "registry keys may hold only letters, digits, '_', '.' and '-'")
    seen = {}
    for i, key in enumerate(config["run"]):  # per-model rules are named after the key
        name = re.sub(r"\W", "_", key)
        if name in seen:
            raise ConfigError(f"run[{i}]", f"models {seen[name]!r} and {key!r} differ only in "
                                           "'-', '.' or '_'; rename one")
        seen[name] = key
    if config["corpus"] not in config["corpora"]:
        raise ConfigError("corpus", f"unknown corpus {config['corpus']!r}; known corpora: "
                                    f"{', '.join(sorted(config['corpora']))}")
    seqlen = config["sampling"]["seqlen"]
    for key in config["run"]:
        spec = models[key]
        shape = model_shape(key, spec)
        if spec["source"] == "pypi":
            for field in ("package_sha256", "files"):
                if len(spec[field]) != len(spec["packages"]):
                    raise ConfigError(f"models.{key}.{field}",
                                      f"{len(spec[field])} entries for {len(spec['packages'])} "
                                      "packages: give one per package, in the same order")
        if spec.get("gpus", 1) > 1 and spec.get("device_map") != "auto":
            raise ConfigError(f"models.{key}.gpus", f"{spec['gpus']} GPUs per job need "
                                                    "device_map: auto to spread the model")
        own = window_seqlen(config, key)
        if own > shape["context"]:
            where = f"models.{key}.seqlen" if "seqlen" in spec else "sampling.seqlen"
            raise ConfigError(where, f"{own} exceeds the context of model {key!r} "
                                     f"({shape['context']} tokens)")
        n_layers, n_heads = shape["n_layers"], shape["n_heads"]
        for j, layer in enumerate(spec.get("feature3d_layers", [])):
            if not 0 <= layer < n_layers:
                raise ConfigError(f"models.{key}.feature3d_layers[{j}]",
                                  f"layer {layer} is outside the model (0..{n_layers - 1})")
        for j, item in enumerate(spec.get("compare_heads", [])):
            where = f"models.{key}.compare_heads[{j}]"
            if not 0 <= item["layer"] < n_layers:
                raise ConfigError(f"{where}.layer", f"layer {item['layer']} is outside the model "
                                                    f"(0..{n_layers - 1})")
            selection.check({"heads": {"heads": item["heads"]}}, n_layers, n_heads, where)
        selection.check(config["heads"]["sets"], n_layers, n_heads, "heads.sets")
        for j, layer in enumerate(spec.get("intervention_layers", [])):
            if not 0 <= layer < n_layers:
                raise ConfigError(f"models.{key}.intervention_layers[{j}]",
                                  f"layer {layer} is outside the model (0..{n_layers - 1})")
        layers = config["components"]["layers"]
        for j, layer in enumerate([] if layers == "all" else layers):
            if not 0 <= layer < n_layers:
                raise ConfigError(f"components.layers[{j}]", f"layer {layer} is outside model "
                                                             f"{key!r} (0..{n_layers - 1})")
    for key in ("perplexity", "sweeps"):
        if config[key]["seqlen"] > seqlen:
            raise ConfigError(f"{key}.seqlen", f"{config[key]['seqlen']} exceeds sampling.seqlen "
                                               f"({seqlen}): the windows are cut from those")
    if config["sweeps"]["samples"] > config["sampling"]["nsamples"]:
        raise ConfigError("sweeps.samples", f"{config['sweeps']['samples']} exceeds "
                                            f"sampling.nsamples ({config['sampling']['nsamples']})")


def window_seqlen(config: dict, key: str) -> int:
    """Tokens per analysis window of model ``key``: its own ``seqlen``, or sampling.seqlen."""
    return config["models"][key].get("seqlen", config["sampling"]["seqlen"])


def cut_seqlen(config: dict, key: str, section: str) -> int:
    """Tokens kept of each held-out (``perplexity``) or sweep (``sweeps``) window of model
    ``key``: the section's seqlen, capped at the model's window length."""
    return min(config[section]["seqlen"], window_seqlen(config, key))


def massive_thresholds(config: dict, key: str) -> dict:
    """``{"ratio_threshold", "abs_threshold"}`` of model ``key``: the study's ``massive``,
    overridden by the model's own ``massive`` where it sets them."""
    return {**config["massive"], **config["models"][key].get("massive", {})}


def feature3d_layers(config: dict, key: str) -> list[int]:
    """Layers of the 3D figures: configured, or the first and the middle layer."""
    spec = config["models"][key]
    if "feature3d_layers" in spec:
        return list(spec["feature3d_layers"])
    n = model_shape(key, spec)["n_layers"]
    return sorted({1 % n, n // 2})


def intervention_layers(config: dict, key: str) -> list[int]:
    """Layers of the massive-activation intervention: configured, or the middle layer."""
    spec = config["models"][key]
    if "intervention_layers" in spec:
        return sorted(spec["intervention_layers"])
    return [model_shape(key, spec)["n_layers"] // 2]


def components(config: dict, key: str) -> list[str]:
    """Component ablations of a model (see massact.sweeps)."""
    return component_names(model_shape(key, config["models"][key])["n_layers"],
                           config["components"]["layers"])


def experiments(config: dict) -> list[str]:
    """Pruning experiments: one per head set, one per seed of a random set."""
    return list(selection.expand(config["heads"]["sets"]))


def compare_heads(config: dict, key: str, layer: int) -> list[list[int]] | None:
    """Heads configured for the 3D comparison at ``layer``, or None (= its best head)."""
    for item in config["models"][key].get("compare_heads", []):
        if item["layer"] == layer:
            return sorted(item["heads"])
    return None


# ------------------------------------------------------- checks against the filesystem
def load_yaml(path) -> dict:
    """A config file's mapping; a syntax error names the file, line and column."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = yaml.load(text, Loader=_LOADER)
        except yaml.YAMLError:  # the pure-Python parser says what is wrong in more words
            data = yaml.safe_load(text)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except UnicodeDecodeError as e:
        raise UserError(f"config file {path} is not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(str(x) for x in (getattr(e, "context", None),
                                          getattr(e, "problem", None)) if x) or str(e)
        raise UserError(f"config file {path}{where}: not valid YAML ({what})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path}: the top level must be a mapping of keys, "
                        f"not a {type(data).__name__}")
    return data


def check_inputs(config: dict, base: Path) -> None:
    """What the config alone can tell about local inputs, before any job: the `path`
    models it runs exist and the `files` corpus it samples matches files."""
    for key in config["run"]:
        spec = config["models"][key]
        if spec["source"] == "path":
            p = Path(os.path.expanduser(spec["path"]))
            if not (p if p.is_absolute() else base / p).exists():
                raise ConfigError(f"models.{key}.path", f"{spec['path']} does not exist (looked "
                                  f"in {base if not p.is_absolute() else p.parent}); "
                                  "give the model's safetensors directory or .gguf file")
    key = config["corpus"]
    spec = config["corpora"][key]
    if spec["source"] == "files":
        for i, (pattern, found) in enumerate(zip(spec["files"], corpus_matches(spec, base))):
            if not found:
                raise ConfigError(f"corpora.{key}.files[{i}]",
                                  f"no file matches {pattern!r} (relative to {base})")


def corpus_matches(spec: dict, base) -> list[list[str]]:
    """Per pattern of a `files` corpus, the files it matches, sorted (``~`` expanded; a
    relative pattern is taken from ``base``)."""
    return [sorted(glob.glob(os.path.join(base, os.path.expanduser(p)))) for p in spec["files"]]


def check_layer(config: dict, key: str, layer: int) -> None:
    """A file asked for a layer outside model ``key`` is refused, naming the layers."""
    n_layers = model_shape(key, config["models"][key])["n_layers"]
    if not 0 <= layer < n_layers:
        raise UserError(f"model {key!r} has layers 0..{n_layers - 1}; there is no layer {layer}")


_RELATIVE_IMPORT = re.compile(r"^\s*from \.(\w*) import \(?([\w, ]*)", re.M)


@functools.lru_cache(maxsize=None)
def _library_imports(path: Path) -> tuple[str, ...]:
    """Library modules that the module at ``path`` imports (``from .x import ...`` and
    ``from . import x``), read from its text."""
    names = []
    for module, imported in _RELATIVE_IMPORT.findall(path.read_text(encoding="utf-8")):
        names += [module] if module else [n.strip() for n in imported.split(",") if n.strip()]
    return tuple(n for n in names if (path.parent / f"{n}.py").exists())


def library_closure(src: Path, modules) -> list[str]:
    """``modules`` of the library in ``src`` (a directory of modules) and every library
    module they import, at any depth, sorted: what a job computes with, so that editing
    any of them re-runs it. Read from the source text; nothing is imported."""
    src = Path(src).resolve()
    seen, todo = set(), list(modules)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += _library_imports(src / f"{m}.py")
    return sorted(seen)


def main(argv=None) -> int:
    """``python -m massact.config [FILE ...]``: check config files as the workflow reads
    them (config/config.yaml, then each FILE layered over it), with file and line for a
    syntax error, and the key for a bad value."""
    argv = sys.argv[1:] if argv is None else argv
    base = SCHEMA.parents[1]
    files = [base / "config" / "config.yaml", *map(Path, argv)]
    try:
        config = validate(overlay(*(load_yaml(f) for f in files)))
        check_inputs(config, Path.cwd())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"ok: {', '.join(map(str, files))}; models {', '.join(config['run'])}; "
          f"corpus {config['corpus']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
