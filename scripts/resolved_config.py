"""Rule resolved_config: the config this run used, every file and --config merged and
every default filled in, with sorted keys."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import yaml

from massact.io import write_text
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    # the merged config the job ran with; every mapping's keys sorted
    write_text(yaml.safe_dump(dict(sm.config), sort_keys=True, default_flow_style=None),
               sm.output[0])
