"""Rule cumulative_pruning: remove the top-, bottom- and random-k heads for each k of the
grid; change of the massive activation and perplexity against k."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import pyarrow as pa

from massact.ablation import means_from_table
from massact.io import read_parquet, write_parquet
from massact.runtime import rule_context
from massact.sampling import windows_tensor
from massact.sources import load_model
from massact.sweeps import (cumulative_rows, cumulative_sets, head_set_key, head_set_start,
                            prune_context, run_configs)

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    sets = cumulative_sets(read_parquet(sm.input.scores).to_pandas(), p.k, p.seeds)
    unique = sorted({head_set_key(s["heads"]) for s in sets}, key=lambda k: (k.count(";"), k))
    print(f"{len(sets)} (kind, seed, k) points, {len(unique)} distinct head sets")
    model, tok = load_model(sm.input.model, p.device, device_map=p.device_map)
    means = means_from_table(read_parquet(sm.input.means)) if p.mode == "mean" else None
    results = run_configs(model, tok, windows_tensor(read_parquet(sm.input.windows)),
                          windows_tensor(read_parquet(sm.input.heldout)), unique, k=p.topk,
                          n_boot=p.bootstrap, seed=p.seed, batch_tokens=p.batch_tokens,
                          contexts=prune_context(model, p.mode, means, p.post_norm),
                          starts={key: head_set_start(key) for key in unique})
    rows = cumulative_rows(sets, read_parquet(sm.input.baseline), read_parquet(sm.input.ppl),
                           results, p.bootstrap, p.seed)
    write_parquet(pa.Table.from_pandas(rows, preserve_index=False), sm.output[0],
                  sort_by=["kind", "seed", "k"])
