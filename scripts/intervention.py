"""Rules intervention and intervention_every_layer: at one layer (or at every layer at
once), set the massive activations (and, as a control, as many ordinary entries) to zero
or to their mean; perplexity on the held-out windows."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.arch import adapt
from massact.intervention import intervene, intervention_table, massive_dim_means
from massact.io import read_parquet, write_parquet
from massact.perplexity import run_ppl
from massact.runtime import rule_context
from massact.sampling import windows_tensor
from massact.sources import load_model

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    layer = p.layers  # an int, or a list: every layer at once
    label = layer if isinstance(layer, int) else "every layer"
    model, _ = load_model(sm.input.model, p.device, device_map=p.device_map, tokenizer=False)
    heldout = windows_tensor(read_parquet(sm.input.heldout))
    base = read_parquet(sm.input.baseline)
    means, counts = massive_dim_means(model, windows_tensor(read_parquet(sm.input.samples)), layer,
                                      p.ratio, p.abs)
    for row, (m, c) in enumerate(zip(means.reshape(-1, means.shape[-1]),
                                     counts.reshape(-1, counts.shape[-1]))):
        top = c.argsort(descending=True)[:5].tolist()
        at = layer if isinstance(layer, int) else layer[row]
        print(f"layer {at}: {int((c > 0).sum())} dims massive in the analysis samples; "
              f"most often: {[(d, int(c[d]), round(float(m[d]), 1)) for d in top]}")
    for mode, out in zip(p.modes, sm.output):
        runs, counts = {}, {}
        for cond in ("massive", "control"):
            with intervene(model, layer, mode, cond, p.ratio, p.abs, dim_means=means,
                           seed=p.seed) as changed:
                runs[cond] = run_ppl(model, heldout, f"{cond} {mode}", p.bootstrap,
                                     p.bootstrap_seed)
            counts[cond] = changed
            print(f"{label}, {mode} {cond}: {sum(changed)} entries changed, "
                  f"perplexity {runs[cond]['ppl'][0].as_py():.3f}")
        write_parquet(intervention_table(layer if isinstance(layer, int) else -1, mode, base,
                                         runs, counts, p.bootstrap, p.bootstrap_seed), out)
