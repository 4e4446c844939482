"""Rule component_ablations_<model>: remove whole attention sublayers and MLPs (all at
once, then one layer at a time); per ablation the changes against the sweep baseline
and the perplexity on the held-out windows."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import pyarrow as pa

from massact.analysis import changes
from massact.arch import adapt
from massact.io import read_parquet, write_parquet
from massact.runtime import rule_context
from massact.sampling import windows_tensor
from massact.sources import load_model
from massact.sweeps import ablate, component_start, run_configs

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    model, tok = load_model(sm.input.model, p.device, device_map=p.device_map)
    n_layers = adapt(model).n_layers
    windows = windows_tensor(read_parquet(sm.input.windows))
    heldout = windows_tensor(read_parquet(sm.input.heldout))
    baseline = read_parquet(sm.input.baseline)
    results = run_configs(model, tok, windows, heldout, p.ablations, k=p.topk, n_boot=p.bootstrap,
                          seed=p.seed, batch_tokens=p.batch_tokens,
                          contexts=lambda name: ablate(model, name, n_layers),
                          starts={a: component_start(a, n_layers) for a in p.ablations})
    for name, changes_path, ppl_path in zip(p.ablations, sm.output.changes, sm.output.ppl):
        stats, ppl = results[name]
        c = changes(baseline, stats, p.bootstrap, p.seed)
        write_parquet(pa.Table.from_pandas(c, preserve_index=False), changes_path, sort_by=["layer"])
        write_parquet(ppl, ppl_path)
