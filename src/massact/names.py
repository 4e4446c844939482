"""Small tables shared by the config checks and the library; no module-level imports
(``dtype_of`` imports torch only when called), so that the jobs that compute with the
library do not re-run when the config checks change."""

#: Tiny architectures for tests and CI, built from a config with no download.
RANDOM_SIZES = {
    "tiny": dict(hidden=64, layers=4, heads=4, intermediate=128, positions=256),
    "small": dict(hidden=768, layers=12, heads=12, intermediate=3072, positions=1024),
}


def component_names(n_layers: int, layers="all") -> list[str]:
    """``attn-all``, ``mlp-all``, then ``attn-<l>`` and ``mlp-<l>`` of each layer: the
    component ablations, named as their files are (massact.sweeps runs them)."""
    layers = range(n_layers) if layers == "all" else sorted(layers)
    return (["attn-all", "mlp-all"] + [f"attn-{l}" for l in layers]
            + [f"mlp-{l}" for l in layers])


#: The dtypes a model can be materialized and run in. Every reduction (top-k, median,
#: head scores, nll) is done in float32 whatever the model computes in.
DTYPES = ("float32", "bfloat16", "float16")


def dtype_of(spec: dict):
    """The torch dtype of a registry entry or source.json (``dtype``, float32 unless set)."""
    import torch

    from .errors import UserError

    name = spec.get("dtype", "float32")
    if name not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, not {name!r}")
    return getattr(torch, name)
