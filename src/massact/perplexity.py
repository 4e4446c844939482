"""Perplexity on held-out windows, with a bootstrap interval over windows.

Each window's summed next-token cross-entropy (natural log) over its positions
1..T-1 is kept, so that any run can be compared window by window with another
(paired tests) and re-summarized without running the model again. Perplexity
is exp(Σ nll / Σ tokens) over the windows.

The logits are formed from the decoder's final hidden state as the model's own head
forms them (a bias and Gemma's final logit soft-capping included), a slice of the
vocabulary at a time for every position of the batch, with a running log-sum-exp
(:func:`nll_from_hidden`), so a 262k-token vocabulary never needs a full
(tokens × vocab) log-softmax in memory.
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


#: the (positions × vocabulary slice) logits of one step of :func:`nll_from_hidden` stay
#: under this many float32 numbers (16 MB): small enough for the allocator to reuse
LEAN_BLOCK = 4 * 2**20
#: the narrowest vocabulary slice: positions are taken in chunks of at most
#: LEAN_BLOCK // MIN_SLICE, so that the weights are read in slices this wide or wider
MIN_SLICE = 1024


def _plain_linear(head) -> bool:
    """A head whose weight can be multiplied directly: a plain ``nn.Linear`` with its
    weight in memory (not quantized, not offloaded by accelerate to the meta device)."""
    return (type(head) is torch.nn.Linear and head.weight.device.type != "meta"
            and not getattr(getattr(head, "_hf_hook", None), "offload", False))


@torch.no_grad()
def nll_from_hidden(model, hidden: torch.Tensor, ids: torch.Tensor) -> np.ndarray:
    """Summed next-token nll of each row of ``ids`` from the decoder's final hidden states
    (``hidden``: rows × positions × d), the positions of the whole batch together, against
    slices of the vocabulary with a running log-sum-exp: nll = logsumexp(z) − z_target
    with z = W h (+ b), soft-capped as the model's head does. The same numbers as a
    cross-entropy of the full logits, to float32 rounding, without a (positions × vocab)
    tensor. A head that is not a plain linear layer is run as the model runs it, on
    chunks of positions."""
    head = model.get_output_embeddings()
    rows, t = ids.shape[0], ids.shape[1] - 1
    chunk = max(1, LEAN_BLOCK // MIN_SLICE)  # positions per step
    if not _plain_linear(head):
        out = np.zeros(rows)
        for r in range(rows):
            for a in range(0, t, chunk):
                b = min(a + chunk, t)
                logits = _logits(model, hidden[r, a:b])
                y = ids[r, a + 1:b + 1].to(logits.device)
                out[r] += float(F.cross_entropy(logits, y, reduction="sum").double())
        return out
    w, bias = head.weight, head.bias
    vocab = w.shape[0]
    h_all = hidden[:, :t].reshape(-1, hidden.shape[-1]).to(w.device)
    y_all = ids[:, 1:].reshape(-1).to(w.device)
    if y_all.numel() and (int(y_all.min()) < 0 or int(y_all.max()) >= vocab):
        raise ValueError(f"token ids outside the vocabulary (0..{vocab - 1})")
    cap = getattr(model.config, "final_logit_softcapping", None)
    nll = torch.empty(h_all.shape[0], dtype=torch.float64, device=w.device)
    for p in range(0, h_all.shape[0], chunk):
        h, y = h_all[p:p + chunk], y_all[p:p + chunk]
        target = torch.full((h.shape[0],), float("nan"), device=w.device)
        m = torch.full((h.shape[0],), float("-inf"), device=w.device)
        acc = torch.zeros(h.shape[0], device=w.device)
        step = max(MIN_SLICE, LEAN_BLOCK // h.shape[0])
        for a in range(0, vocab, step):
            z = F.linear(h, w[a:a + step], None if bias is None else bias[a:a + step]).float()
            if cap:
                z = torch.tanh(z / cap) * cap
            here = ((y >= a) & (y < a + step)).nonzero().squeeze(1)  # targets in this slice
            target[here] = z[here, y[here] - a]
            m_new = torch.maximum(m, z.max(1).values)
            acc = acc * torch.exp(m - m_new) + torch.exp(z - m_new[:, None]).sum(1)
            m = m_new
        nll[p:p + chunk] = (m + torch.log(acc) - target).double()
    return nll.view(rows, t).sum(1).cpu().numpy()


def window_nll(model, windows: torch.Tensor, *, desc: str = "perplexity",
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
            # the LM head may sit on another GPU than the last block (device_map)
            nll[batch] = nll_from_hidden(model, hidden, ids)
            n[batch] = ids.shape[1] - 1
            bar.update(len(batch))
    bar.close()
    return nll, n


def run_ppl(model, windows: torch.Tensor, run: str, n_boot: int, seed: int,
            batch_size: int = 1, desc: str | None = None) -> pa.Table:
    """Perplexity table of one run on ``windows`` (with whatever hooks are active);
    ``desc`` labels its progress bar (default: the run's name)."""
    nll, n = window_nll(model, windows, desc=desc or f"perplexity {run}", batch_size=batch_size)
    return ppl_table(run, nll, n, n_boot, seed, window_ids(windows.cpu()))
