"""Rule prune_heads: select one experiment's heads, rerun the baseline pass without
them, and compare per layer with the baseline."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import pyarrow as pa

from massact.ablation import ablate_heads, means_from_table, post_norm_used
from massact.analysis import changes
from massact.forward import analyse
from massact.perplexity import run_ppl
from massact.io import read_parquet, write_parquet, write_yaml
from massact.runtime import batch_size, rule_context
from massact.sampling import windows_tensor
from massact.selection import select
from massact.sources import load_model

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    heads = select(read_parquet(sm.input.scores).to_pandas(), p.rule, dict(p.tested))
    model, tok = load_model(sm.input.model, p.device, device_map=p.device_map)
    windows = windows_tensor(read_parquet(sm.input.samples))
    means = means_from_table(read_parquet(sm.input.means)) if p.mode == "mean" else None
    print(f"pruning {len(heads)} heads ({p.mode}, post-attention norm {p.post_norm}): {heads}")
    heldout = windows_tensor(read_parquet(sm.input.heldout))
    with ablate_heads(model, heads, mode=p.mode, means=means, post_norm=p.post_norm):
        out = analyse(model, tok, windows, k=p.topk, heads=True,
                      desc=f"prune {sm.wildcards.experiment}",
                      batch_size=batch_size(p.batch_tokens, windows))
        ppl = run_ppl(model, heldout, f"pruning {sm.wildcards.experiment}", p.bootstrap, p.seed,
                      batch_size=batch_size(p.batch_tokens, heldout))
    c = changes(read_parquet(sm.input.baseline), out["layer_stats"], p.bootstrap, p.seed)
    write_parquet(out["layer_stats"], sm.output.stats, sort_by=["sample", "layer", "rank"])
    write_parquet(out["head_scores"], sm.output.scores, sort_by=["sample", "layer", "head"])
    write_parquet(pa.Table.from_pandas(c, preserve_index=False), sm.output.changes,
                  sort_by=["layer"])
    write_parquet(ppl, sm.output.ppl)
    write_yaml({"experiment": sm.wildcards.experiment, "rule": dict(p.rule), "mode": p.mode,
                "post_norm": post_norm_used(model, p.post_norm), "heads": heads},
               sm.output.heads)
