"""Start an ablated pass at the first block it changes.

Removing MLP 20 leaves blocks 0–19 exactly as in the unablated pass, so computing
them again is waste. :class:`PrefixCache` keeps, from one unablated pass over a set
of windows, the input of chosen blocks for each window; inside :meth:`PrefixCache.start`
a pass over one of those windows runs the model's own forward (embeddings, rotary and
positional inputs, masks: everything the model builds before its first block), but
blocks before the start block return at once: each hands its input on unchanged, and
the last one hands on the cached input of the start block. The start block and every
block after it compute as in a full pass, so their outputs are bit-identical to it
(tests/test_prefix.py); hooks on the skipped blocks (statistics, ablations) must not
be relied on, and the caller takes what it needs for those layers from the unablated
pass.

Windows are recognised by their token ids, so any number of passes, in any order,
over any of the recorded windows can start late. A pass over a window that was not
recorded is an error, not a silent full pass.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

import torch

from .arch import adapt
from .errors import UserError


def _window_key(ids: torch.Tensor) -> tuple:
    ids = ids.detach()
    return (tuple(ids.shape), ids.cpu().numpy().tobytes())


def kept_starts(starts, per_start: int, max_bytes: int | None) -> list[int]:
    """The start blocks (those after block 0) whose inputs are kept, sorted: every one, or,
    with ``max_bytes`` and ``per_start`` bytes for each, as many of the latest as fit (the
    latest save the most)."""
    starts = sorted({int(s) for s in starts if int(s) > 0})
    if max_bytes is not None and per_start:
        starts = sorted(starts[::-1][:max(0, int(max_bytes // per_start))])
    return starts


def effective_start(kept: list[int], first: int) -> int:
    """Where a pass asked to start at block ``first`` starts: the latest kept start block
    not after it (0: a full pass), which gives the same outputs."""
    return max((s for s in kept if s <= int(first)), default=0)


class PrefixCache:
    """Block inputs of an unablated pass, for the start blocks in ``starts``."""

    def __init__(self, model, starts, max_bytes: int | None = None, tokens: int = 0):
        """``starts``: the blocks where passes will start. With ``max_bytes`` and the
        number of ``tokens`` the recording will see, only as many starts are kept as
        their inputs fit in (the latest first: they save the most); a pass asked to start
        at a block that was not kept starts at the nearest kept block below it
        (:meth:`effective`), which gives the same outputs."""
        self.arch = adapt(model)
        for s in starts:
            if int(s) >= self.arch.n_layers:
                raise UserError(f"start block {s} is outside the model (0..{self.arch.n_layers - 1})")
        p = next(model.parameters())
        self.starts = kept_starts(starts, tokens * model.config.hidden_size * p.element_size(),
                                  max_bytes)
        self.inputs: dict[tuple, dict[int, torch.Tensor]] = {}
        self.extra: dict[int, tuple] = {}  # block → what follows the hidden state in its output
        self._key = None

    # ---------------------------------------------------------------- window id
    def _track_windows(self, stack: ExitStack) -> None:
        def pre(module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                raise UserError("a pass that starts late needs input_ids (not embeddings)")
            self._key = _window_key(ids)

        h = self.arch.base.register_forward_pre_hook(pre, with_kwargs=True)
        stack.callback(h.remove)

    @staticmethod
    def _hidden(args, kwargs) -> torch.Tensor:
        return args[0] if args else kwargs["hidden_states"]

    # ---------------------------------------------------------------- record
    @contextmanager
    def recording(self):
        """Every pass inside is unablated: keep the start blocks' inputs per window."""
        with ExitStack() as stack:
            self._track_windows(stack)
            for s in self.starts:
                def keep(module, args, kwargs, s=s):  # kept in host memory, not on a GPU
                    self.inputs.setdefault(self._key, {})[s] = \
                        self._hidden(args, kwargs).detach().to("cpu", copy=True)

                h = self.arch.blocks[s].register_forward_pre_hook(keep, with_kwargs=True)
                stack.callback(h.remove)
            for i, block in enumerate(self.arch.blocks):
                def shape(module, args, kwargs, out, i=i):
                    # what follows the hidden state (attention weights in some families) is
                    # read by the model only when it returns attentions, which no pass
                    # here asks for: a skipped block hands on None in its place
                    self.extra[i] = (None,) * (len(out) - 1) if isinstance(out, tuple) else None

                h = block.register_forward_hook(shape, with_kwargs=True)
                stack.callback(h.remove)
            yield self

    # ---------------------------------------------------------------- replay
    def effective(self, first: int) -> int:
        """The block a pass asked to start at ``first`` starts at: the latest kept start
        not after it (0: a full pass)."""
        return effective_start(self.starts, first)

    @contextmanager
    def start(self, first: int):
        """Passes inside start at block ``first`` (0: a full pass), which must be a kept
        start block (see :meth:`effective`)."""
        first = int(first)
        if first <= 0:
            yield
            return
        if first not in self.starts:
            raise UserError(f"block {first} was not recorded as a start block")
        with ExitStack() as stack:
            self._track_windows(stack)
            for i in range(first):
                block = self.arch.blocks[i]

                def skip(*args, i=i, **kwargs):
                    hidden = self._hidden(args, kwargs)
                    if i == first - 1:
                        try:
                            kept = self.inputs[self._key][first]
                        except KeyError:
                            raise UserError("a pass that starts late ran on a window the "
                                            "unablated pass did not record") from None
                        # a copy: the start block must not be able to change what
                        # the next configuration's pass starts from
                        hidden = kept.to(hidden.device, copy=True)
                    rest = self.extra.get(i)
                    return hidden if rest is None else (hidden, *rest)

                # an instance-level forward (accelerate's device hooks under device_map)
                # is put back afterwards, not dropped
                stack.callback(self._restore, block, block.__dict__.get("forward"))
                block.forward = skip
            yield

    @staticmethod
    def _restore(block, previous) -> None:
        if previous is None:
            block.__dict__.pop("forward", None)
        else:
            block.forward = previous
