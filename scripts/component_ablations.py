"""Rule component_ablations: remove whole attention sublayers and MLPs (all at once, then
one layer at a time); per ablation the changes against the sweep baseline and the
perplexity on the held-out windows, as two long tables (an ``ablation`` / ``run``
column names the ablation)."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.analysis import changes, long_changes
from massact.arch import adapt
from massact.io import read_parquet, write_parquet
from massact.resampling import concat_ppl
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
    write_parquet(long_changes({a: changes(baseline, results[a][0], p.bootstrap, p.seed)
                                for a in p.ablations}), sm.output.changes)
    write_parquet(concat_ppl([results[a][1] for a in p.ablations]), sm.output.ppl)
