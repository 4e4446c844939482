"""Rule resolved_config: the config this run used, every file and --config merged and
every default filled in, with sorted keys."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.io import write_yaml
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    write_yaml(dict(sm.params.config), sm.output[0])
