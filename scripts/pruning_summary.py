"""Rule pruning_summary: the results table, every experiment against the random control."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import yaml

from massact.analysis import controls, head_label, in_percent, pruning_summary
from massact.io import read_parquet
from massact.tables import write_table
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    names = sm.params.experiments
    runs = {e: read_parquet(p) for e, p in zip(names, sm.input.pruned)}
    ch = {e: read_parquet(p).to_pandas() for e, p in zip(names, sm.input.changes)}
    ppl = {e: read_parquet(p) for e, p in zip(names, sm.input.ppl)}
    rules = dict(sm.params.rules)
    heads, norm_of, design = {}, {}, {}
    for e, p in zip(names, sm.input.heads):
        with open(p) as f:
            run = yaml.safe_load(f)
        heads[e] = " ".join(head_label(l, h) for l, h in run["heads"])
        norm_of[e] = run.get("post_norm", "none")
        design[e] = (len(run["heads"]), norm_of[e])  # compared only with sets like it
    table = pruning_summary(read_parquet(sm.input.baseline), runs, ch, rules,
                            n_boot=sm.params.bootstrap, seed=sm.params.seed,
                            ppl_base=read_parquet(sm.input.ppl_baseline), ppl_by=ppl,
                            designs=design)
    norms = set(norm_of.values())
    table.insert(1, "heads", table["experiment"].map(heads))
    if len(norms) > 1:  # some sets prune with the post-attention norm frozen, some live
        table.insert(2, "post_norm", table["experiment"].map(norm_of))
    randoms, _, matched = controls(rules)  # the controls last
    last = set(randoms) | {c for cs in matched.values() for c in cs}
    table = table.sort_values("experiment", key=lambda e: e.isin(last), kind="stable")
    for c in ("random_rank", "ppl_random_rank", "n_random", "n_matched"):
        if c in table:
            table[c] = table[c].astype("Int64")
    pct = in_percent(table, [c for c in (
        "mean_change", "mean_change_lo", "mean_change_hi", "max_change", "random_min",
        "random_max", "ppl_change", "ppl_change_lo", "ppl_change_hi", "ppl_random_min",
        "ppl_random_max") if c in table])
    note = ("\nChanges are of the top-1 |x| per layer, (pruned − baseline) / baseline, averaged over "
            "layers; 95% intervals: percentile bootstrap over samples. p_vs_random / "
            "p_vs_bottom: two-sided paired sign-flip permutation test over samples (exact for "
            "≤ 16 samples) against the mean of the random sets / the bottom set; p_vs_matched: "
            "the same against the mean of the set's layer-matched controls (as many heads from "
            "the same layers; n_matched sets). ppl: perplexity on "
            "the held-out windows (95% interval: bootstrap over windows); ppl_change: relative to "
            "the unpruned model on the same windows (paired bootstrap); ppl_p_vs_random / "
            "ppl_p_vs_bottom / ppl_p_vs_matched: the same sign-flip test on the per-window mean "
            "nll. p_floor / ppl_p_floor: the smallest p-value these tests can give with "
            "n_samples samples / n_windows windows (2/2^n when every sign pattern is "
            "enumerated). Where the top-1 sits at the first token in every sample, every sample "
            "gives the same change (causal attention: the first token sees only itself), so "
            "the interval over samples has zero width and the tests over samples reach their "
            "floor as soon as two sets differ at all: they hold for these particular random "
            "sets, not for random sets in general. The test over head sets answers the "
            "general question: random_rank / ppl_random_rank rank the experiment among the "
            "n_random random sets (1 = lowest), random_min … random_max is their range, and "
            "set_p_vs_random / ppl_set_p_vs_random is the two-sided rank test 2·min(1 + #sets "
            "≤ it, 1 + #sets ≥ it) / (n_random + 1), whose floor set_p_floor is 2 / "
            "(n_random + 1): 0.18 with 10 random sets, 0.33 with 5; below 0.05 needs 39. A set "
            "is compared only with random and bottom sets of its size pruned with the same "
            "post-attention norm (post_norm); where there are none its comparison columns are "
            "empty. The random sets avoid the tested heads, so the tested set itself is not "
            "among their possible draws.")
    if norms - {"none"}:  # a norm follows the attention output (Gemma-2/3)
        note += (f" The norm after the attention output is {', '.join(sorted(norms))}: live lets "
                 "it rescale the remaining heads, frozen keeps its unablated scale.")
    write_table(table, shown=pct, csv=sm.output.csv, md=sm.output.md, html_path=sm.output.html,
                floatfmt="{:.3f}", note=note,
                title=f"{sm.wildcards.model}: pruning head sets, against the controls")
