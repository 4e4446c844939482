"""Layer statistics of the residual stream, reduced inside forward hooks.

*Layer i* is the output of decoder block i (the residual stream after the block,
before the final norm). For each sample and layer we keep the top-k entries of
|x| over tokens × hidden (value, token position, feature dimension), and the
median (``torch.median``: the lower of the two middle values) and mean of |x|,
all in float32. Full activations are never held for more than one layer.
"""

from __future__ import annotations

from contextlib import contextmanager

import pyarrow as pa
import torch

from .arch import Arch, adapt

LAYER_STATS_SCHEMA = pa.schema([
    ("sample", pa.int32()),
    ("layer", pa.int16()),
    ("rank", pa.int16()),          # 1 = largest |x|
    ("value", pa.float32()),       # |x| of this entry
    ("x", pa.float32()),           # the entry itself, sign included
    ("token_pos", pa.int32()),
    ("token_id", pa.int32()),
    ("token_text", pa.string()),
    ("dim", pa.int32()),
    ("median", pa.float32()),      # median |x| of the layer (same on every rank)
    ("mean", pa.float32()),        # mean |x| of the layer
])


def reduce_layer(x: torch.Tensor, k: int):
    """(values, token positions, dims, median, mean, signed values) of |x| for one
    (tokens, hidden) tensor."""
    signed = x.detach().to(torch.float32)
    a = signed.abs()
    hidden = a.shape[-1]
    flat = a.reshape(-1)
    vals, idx = torch.topk(flat, min(k, flat.numel()))
    return vals, idx // hidden, idx % hidden, flat.median(), flat.mean(), signed.reshape(-1)[idx]


def _block_output(output):
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def block_hooks(arch: Arch, fn):
    """Call ``fn(layer, hidden)`` with each block's output during forward passes."""
    handles = [b.register_forward_hook(lambda m, a, out, i=i: fn(i, _block_output(out)))
               for i, b in enumerate(arch.blocks)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class TokenText:
    """Cached single-token decoding for readable token labels."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.cache: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        t = self.cache.get(token_id)
        if t is None:
            t = self.cache[token_id] = self.tok.decode([token_id])
        return t


def forward_base(arch: Arch, input_ids: torch.Tensor):
    """Run the decoder stack only: the statistics need no logits."""
    return arch.base(input_ids=input_ids, use_cache=False)


class StatsRecorder:
    """Collects the layer statistics of each forward pass inside block hooks."""

    def __init__(self, arch: Arch, tokenizer, k: int, first: int = 0):
        self.arch, self.k, self.first = arch, k, first
        self.text = TokenText(tokenizer)
        self.cols = {f.name: [] for f in LAYER_STATS_SCHEMA}
        self.current: dict = {}

    def hooks(self):
        """Reduce each block's output as it is made; layers before ``first`` (a pass that
        starts late: massact.prefix) are not recorded."""
        def keep(i, h):
            if i >= self.first:
                self.current[i] = [reduce_layer(x, self.k) for x in h]
        return block_hooks(self.arch, keep)

    def collect(self, samples, ids_lists) -> None:
        """Append the reductions of the last pass: ``samples`` the sample numbers of its
        windows in batch order (an int for one window), ``ids_lists`` their token ids."""
        if isinstance(samples, int):
            samples, ids_lists = [samples], [ids_lists]
        for b, (sample, ids_list) in enumerate(zip(samples, ids_lists)):
            self._collect_one(b, sample, ids_list)
        self.current.clear()

    def _collect_one(self, b: int, sample: int, ids_list: list[int]) -> None:
        c = self.cols
        for layer in range(self.first, self.arch.n_layers):
            vals, pos, dims, med, mean, xs = (t.cpu() for t in self.current[layer][b])
            med, mean = float(med), float(mean)
            for r, (v, p, d, xv) in enumerate(zip(vals.tolist(), pos.tolist(), dims.tolist(),
                                                  xs.tolist()), start=1):
                tid = ids_list[p]
                c["sample"].append(sample)
                c["layer"].append(layer)
                c["rank"].append(r)
                c["value"].append(v)
                c["x"].append(xv)
                c["token_pos"].append(p)
                c["token_id"].append(tid)
                c["token_text"].append(self.text(tid))
                c["dim"].append(d)
                c["median"].append(med)
                c["mean"].append(mean)

    def table(self) -> pa.Table:
        return pa.table(self.cols, schema=LAYER_STATS_SCHEMA)


PROMPT_SCHEMA = pa.schema([
    ("layer", pa.int16()),
    ("token_pos", pa.int32()),
    ("token_id", pa.int32()),
    ("token_text", pa.string()),
    ("values", pa.list_(pa.float32())),   # the residual stream x (signed), hidden entries
])


def prompt_features(model, tokenizer, prompt: str) -> pa.Table:
    """The full residual stream of every layer for one prompt (tokens × hidden)."""
    arch = adapt(model)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    text = TokenText(tokenizer)
    per_layer: dict[int, torch.Tensor] = {}
    with block_hooks(arch, lambda i, h: per_layer.__setitem__(i, h[0].detach().float().cpu())), \
            torch.inference_mode():
        forward_base(arch, ids.to(arch.input_device))
    cols = {f.name: [] for f in PROMPT_SCHEMA}
    id_list = ids[0].tolist()
    for layer in range(arch.n_layers):
        for p, row in enumerate(per_layer[layer].tolist()):
            cols["layer"].append(layer)
            cols["token_pos"].append(p)
            cols["token_id"].append(id_list[p])
            cols["token_text"].append(text(id_list[p]))
            cols["values"].append(row)
    return pa.table(cols, schema=PROMPT_SCHEMA)
