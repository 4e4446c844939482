# Massive activations in causal language models: find them, score the heads that
# attend to them, ablate heads and components, and show what changes.
#
#   snakemake --cores all                                  # the default study
#   snakemake --cores all results/smollm2-135m/figures/layerwise.png
#   snakemake --cores all --configfile config/gpt2.yaml     # the GPT-2 study
from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml, then each --configfile, then --config; checked before any job
include: "rules/common.smk"


wildcard_constraints:
    model="|".join(map(re.escape, config["models"])),
    corpus="|".join(map(re.escape, config["corpora"])),
    layer=r"\d+",
    target="|_massive",
    experiment="|".join(map(re.escape, EXPERIMENTS)),
    ablation=r"(attn|mlp)-(all|\d+)",


include: "rules/models.smk"
include: "rules/corpus.smk"
include: "rules/activations.smk"
include: "rules/figures.smk"
include: "rules/heads.smk"
include: "rules/pruning.smk"
include: "rules/perplexity.smk"
include: "rules/ablation.smk"
include: "rules/report.smk"


rule all:
    """Every figure and table of every model in `run`, the cross-model summary and the
    resolved config."""
    default_target: True
    input:
        all_targets(),
