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
from .runtime import progress

PPL_SCHEMA = pa.schema([
    ("run", pa.string()),
    ("n_windows", pa.int32()),
    ("n_tokens", pa.int64()),          # predicted tokens over all windows
    ("ppl", pa.float64()),
    ("ppl_lo", pa.float64()),          # bootstrap 95% interval over windows
    ("ppl_hi", pa.float64()),
    ("window_nll", pa.list_(pa.float64())),     # summed nll of each window
    ("window_tokens", pa.list_(pa.int32())),    # predicted tokens of each window
])


def _logits(model, hidden: torch.Tensor) -> torch.Tensor:
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def window_nll(model, windows: torch.Tensor, chunk: int = 256,
               desc: str = "perplexity") -> tuple[np.ndarray, np.ndarray]:
    """(summed nll, predicted tokens) of each window (row of ``windows``), one pass each.

    Hooks registered on the model (ablations, interventions) act as usual.
    """
    arch = adapt(model)
    nll = np.zeros(windows.shape[0], dtype=np.float64)
    n = np.zeros(windows.shape[0], dtype=np.int64)
    with torch.inference_mode():
        for s in progress(range(windows.shape[0]), desc=desc):
            ids = windows[s:s + 1].to(arch.input_device)
            hidden = arch.base(input_ids=ids, use_cache=False).last_hidden_state[0]
            total = 0.0
            for a in range(0, ids.shape[1] - 1, chunk):
                b = min(a + chunk, ids.shape[1] - 1)
                # the LM head may sit on another GPU than the last block (device_map)
                logits = _logits(model, hidden[a:b])
                total += float(F.cross_entropy(logits, ids[0, a + 1:b + 1].to(logits.device),
                                               reduction="sum").double())
            nll[s], n[s] = total, ids.shape[1] - 1
    return nll, n


def perplexity(nll: np.ndarray, tokens: np.ndarray) -> float:
    return float(np.exp(np.sum(nll) / np.sum(tokens)))


def bootstrap_ppl(nll: np.ndarray, tokens: np.ndarray, n_boot: int, seed: int,
                  level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the perplexity, resampling whole windows."""
    nll, tokens = np.asarray(nll, np.float64), np.asarray(tokens, np.float64)
    est = perplexity(nll, tokens)
    if len(nll) < 2 or n_boot <= 0:
        return est, est
    idx = np.random.default_rng(seed).integers(0, len(nll), size=(n_boot, len(nll)))
    boots = np.exp(nll[idx].sum(1) / tokens[idx].sum(1))
    a = (1 - level) / 2
    return float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def ppl_table(run: str, nll: np.ndarray, tokens: np.ndarray, n_boot: int, seed: int) -> pa.Table:
    """One row: the run's perplexity, its interval and the per-window values."""
    lo, hi = bootstrap_ppl(nll, tokens, n_boot, seed)
    return pa.table({
        "run": [run], "n_windows": [len(nll)], "n_tokens": [int(np.sum(tokens))],
        "ppl": [perplexity(nll, tokens)], "ppl_lo": [lo], "ppl_hi": [hi],
        "window_nll": [[float(v) for v in nll]], "window_tokens": [[int(v) for v in tokens]],
    }, schema=PPL_SCHEMA)


def run_ppl(model, windows: torch.Tensor, run: str, n_boot: int, seed: int) -> pa.Table:
    """Perplexity table of one run on ``windows`` (with whatever hooks are active)."""
    nll, n = window_nll(model, windows, desc=f"perplexity {run}")
    return ppl_table(run, nll, n, n_boot, seed)


def window_values(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(per-window nll, per-window tokens) of a one-row perplexity table."""
    row = table.to_pylist()[0]
    return np.asarray(row["window_nll"], np.float64), np.asarray(row["window_tokens"], np.int64)


def compare(base: pa.Table, run: pa.Table, n_boot: int, seed: int) -> dict:
    """The relative perplexity change of ``run`` against ``base`` on the same windows,
    with a paired bootstrap interval (resampling windows) and a sign-flip permutation
    test on the per-window mean nll differences."""
    from .analysis import paired_permutation_p

    bn, bt = window_values(base)
    rn, rt = window_values(run)
    if not np.array_equal(bt, rt):
        raise ValueError("perplexities compared on different windows")
    ratio = perplexity(rn, rt) / perplexity(bn, bt) - 1
    lo = hi = ratio
    if len(bn) >= 2 and n_boot > 0:
        idx = np.random.default_rng(seed).integers(0, len(bn), size=(n_boot, len(bn)))
        boots = np.exp((rn[idx].sum(1) - bn[idx].sum(1)) / bt[idx].sum(1)) - 1
        lo, hi = np.quantile(boots, 0.025), np.quantile(boots, 0.975)
    return {"ppl_change": float(ratio), "ppl_change_lo": float(lo), "ppl_change_hi": float(hi),
            "ppl_p": paired_permutation_p(rn / rt - bn / bt, seed=seed)}
