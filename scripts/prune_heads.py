"""Rule prune_heads: select every experiment's heads, rerun the baseline pass without
each set (from the first block it changes), and compare per layer with the baseline."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import pyarrow as pa

from massact.ablation import ablate_heads, means_from_table, post_norm_used
from massact.analysis import changes
from massact.io import read_parquet, write_parquet, write_yaml
from massact.runtime import rule_context
from massact.sampling import windows_tensor
from massact.selection import select
from massact.sources import load_model
from massact.sweeps import run_configs

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    exps = {e: p.experiments[e] for e in p.names}  # {rule, tested, post_norm}, output order
    scores = read_parquet(sm.input.scores).to_pandas()
    heads = {e: select(scores, x["rule"], dict(x["tested"])) for e, x in exps.items()}
    model, tok = load_model(sm.input.model, p.device, device_map=p.device_map)
    means = means_from_table(read_parquet(sm.input.means)) if p.mode == "mean" else None
    name = {e: f"pruning {e}" for e in exps}  # configurations, named as their perplexity runs
    start = {name[e]: min((layer for layer, _ in heads[e]), default=0) for e in exps}
    for e in exps:
        print(f"{e}: {len(heads[e])} heads ({p.mode}, post-attention norm "
              f"{exps[e]['post_norm']}), lowest block {start[name[e]]}: {heads[e]}")
    by_name = {name[e]: e for e in exps}

    def prune(config):
        e = by_name[config]
        return ablate_heads(model, heads[e], mode=p.mode, means=means,
                            post_norm=exps[e]["post_norm"])

    runs = run_configs(model, tok, windows_tensor(read_parquet(sm.input.samples)),
                       windows_tensor(read_parquet(sm.input.heldout)), list(by_name),
                       k=p.topk, n_boot=p.bootstrap, seed=p.seed, contexts=prune,
                       starts=start, batch_tokens=p.batch_tokens, heads=True)
    baseline = read_parquet(sm.input.baseline)
    for i, e in enumerate(exps):
        r = runs[name[e]]
        c = changes(baseline, r.stats, p.bootstrap, p.seed)
        write_parquet(r.stats, sm.output.stats[i], sort_by=["sample", "layer", "rank"])
        write_parquet(r.head_scores, sm.output.scores[i], sort_by=["sample", "layer", "head"])
        write_parquet(pa.Table.from_pandas(c, preserve_index=False), sm.output.changes[i],
                      sort_by=["layer"])
        write_parquet(r.ppl, sm.output.ppl[i])
        write_yaml({"experiment": e, "rule": dict(exps[e]["rule"]), "mode": p.mode,
                    "post_norm": post_norm_used(model, exps[e]["post_norm"]),
                    "heads": heads[e]}, sm.output.heads[i])
