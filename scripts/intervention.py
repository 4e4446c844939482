"""Rules intervention and intervention_every_layer: at one layer (or at every layer at
once), set the massive activations (and, as a control, as many ordinary entries) to zero
or to their mean; perplexity on the held-out windows."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.intervention import intervene, intervention_table, massive_means
from massact.io import read_parquet, write_parquet
from massact.perplexity import run_ppl
from massact.runtime import batch_size, rule_context
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
    layers = [layer] if isinstance(layer, int) else list(layer)
    samples = windows_tensor(read_parquet(sm.input.samples))
    means = massive_means(model, samples, layers, p.ratio, p.abs,
                          batch_size=batch_size(p.batch_tokens, samples))
    for row, at in enumerate(layers):
        c, m = means.count[row], means.dim[row]
        top = c.argsort(descending=True)[:5].tolist()
        fixed = means.fixed(row).nonzero().tolist()
        print(f"layer {at}: {int((c > 0).sum())} dims massive in the analysis samples; "
              f"most often (dim, count, mean): "
              f"{[(d, int(c[d]), round(float(m[d]), 1)) for d in top]}; "
              f"{len(fixed)} (position, dim) pairs recur at a fixed position: "
              f"{[(q, d, round(float(means.pos[row, q, d]), 1)) for q, d in fixed[:5]]}")
    for mode, out in zip(p.modes, sm.output):
        runs, counts = {}, {}
        for cond in ("massive", "control"):
            with intervene(model, layer, mode, cond, p.ratio, p.abs, dim_means=means,
                           seed=p.seed) as changed:
                runs[cond] = run_ppl(model, heldout, f"{cond} {mode}", p.bootstrap,
                                     p.bootstrap_seed,
                                     batch_size=batch_size(p.batch_tokens, heldout))
            counts[cond] = changed
            print(f"{label}, {mode} {cond}: {sum(changed)} entries changed, "
                  f"perplexity {runs[cond]['ppl'][0].as_py():.3f}")
        write_parquet(intervention_table(layer if isinstance(layer, int) else -1, mode, base,
                                         runs, counts, p.bootstrap, p.bootstrap_seed), out)
