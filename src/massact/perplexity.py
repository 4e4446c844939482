"""Perplexity on held-out windows, with a bootstrap interval over windows.

Each window's summed next-token cross-entropy (natural log) over its positions
1..T-1 is kept, so that any run can be compared window by window with another
(paired tests) and re-summarized without running the model again. Perplexity
is exp(Σ nll / Σ tokens) over the windows.

The logits are formed in chunks of positions from the decoder's final hidden
state, exactly as the model's own head does (Gemma's final logit soft-capping
included), so a 262k-token vocabulary never needs a full (tokens × vocab)
log-softmax in memory.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from .arch import adapt
from .resampling import (PPL_SCHEMA, bootstrap_ppl, compare,  # noqa: F401  (public here too)
                         perplexity, ppl_table, window_ids, window_values)
from .runtime import batches, progress

def _logits(model, hidden: torch.Tensor) -> torch.Tensor:
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def window_nll(model, windows: torch.Tensor, chunk: int = 256, desc: str = "perplexity",
               batch_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(summed nll, predicted tokens) of each window (row of ``windows``), ``batch_size``
    windows per pass (the same, to float32 rounding, for any batch size).

    Hooks registered on the model (ablations, interventions) act as usual.
    """
    arch = adapt(model)
    nll = np.zeros(windows.shape[0], dtype=np.float64)
    n = np.zeros(windows.shape[0], dtype=np.int64)
    bar = progress(None, desc=desc, total=windows.shape[0], unit="window")
    with torch.inference_mode():
        for batch in batches(windows.shape[0], batch_size):
            ids = windows[batch].to(arch.input_device)
            hidden = arch.base(input_ids=ids, use_cache=False).last_hidden_state
            for row, s in enumerate(batch):
                total = 0.0
                for a in range(0, ids.shape[1] - 1, chunk):
                    b = min(a + chunk, ids.shape[1] - 1)
                    # the LM head may sit on another GPU than the last block (device_map)
                    logits = _logits(model, hidden[row, a:b])
                    total += float(F.cross_entropy(
                        logits, ids[row, a + 1:b + 1].to(logits.device), reduction="sum").double())
                nll[s], n[s] = total, ids.shape[1] - 1
            bar.update(len(batch))
    bar.close()
    return nll, n


def run_ppl(model, windows: torch.Tensor, run: str, n_boot: int, seed: int,
            batch_size: int = 1, desc: str | None = None) -> pa.Table:
    """Perplexity table of one run on ``windows`` (with whatever hooks are active);
    ``desc`` labels its progress bar (default: the run's name)."""
    nll, n = window_nll(model, windows, desc=desc or f"perplexity {run}", batch_size=batch_size)
    return ppl_table(run, nll, n, n_boot, seed, window_ids(windows.cpu()))
