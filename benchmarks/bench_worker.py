#!/usr/bin/env python
"""One benchmark process: one model, loaded through one stack, running named variants.

Started by ``bench_stages.py``; not meant to be run by hand (but it can be, see --help).

Stacks (``--stack``):

- ``massact``  the project (``massact.forward.analyse`` and friends) and bare
               Hugging Face forwards, SDPA and eager attention;
- ``tl3``      TransformerLens 3.x, the classic ``HookedTransformer``;
- ``tl4``      TransformerLens 4.x, ``TransformerBridge`` (wraps the HF model).

Only the ``massact`` stack imports the project; the TransformerLens stacks import
torch, transformers, numpy and transformer_lens only, so they run in any
interpreter that has TransformerLens (a separate virtual environment).

Two modes:

- server (default): load, print ``{"ready": ...}``, then answer JSON commands on
  stdin, one per line: ``{"op": "run", "variant": V, "window": i}`` →
  ``{"ok": true, "wall": s, "cpu": s}``; ``{"op": "quit"}``. The coordinator
  interleaves the variants of several such processes, one call at a time.
- ``--once VARIANT``: load, then run VARIANT once on window 0 and report memory
  (resident set after loading, peak during the run, whole-process peak).

Protocol lines go to the original stdout; everything else (library prints,
progress bars, warnings) is sent to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import sys
import time
import traceback

# ---------------------------------------------------------------------------- memory


def proc_status_mb(field: str) -> float | None:
    """VmRSS / VmHWM of this process in MB (MiB), from /proc."""
    try:
        m = re.search(rf"^{field}:\s+(\d+) kB", open("/proc/self/status").read(), re.M)
        return int(m.group(1)) / 1024 if m else None
    except OSError:
        return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def prune_heads_for(n_layers: int, n_heads: int) -> list[tuple[int, int]]:
    """The three heads every pruning variant removes (the cost does not depend on which)."""
    return sorted({(0, 0), (n_layers // 2, 1 % n_heads), (n_layers - 1, 2 % n_heads)})


def touch(modules) -> None:
    """Read every weight once, so that memory-mapped weights are resident before measuring."""
    import torch

    with torch.no_grad():
        for m in modules:
            for t in list(m.parameters()) + list(m.buffers()):
                t.sum()


def resid_post(name: str) -> bool:
    return name.endswith("hook_resid_post")


# ---------------------------------------------------------------------------- stacks


class MassactStack:
    """The project's passes and the bare Hugging Face forwards they are compared with."""

    VARIANTS = ("base_sdpa", "lm_sdpa", "base_eager", "extract", "heads", "extract_heads",
                "extract_heads_means", "prune")

    def __init__(self, model_dir: str, variants: list[str], topk: int):
        import torch

        from massact.ablation import ablate_heads
        from massact.arch import adapt
        from massact.forward import analyse, head_scores
        from massact.sources import load_model

        self.info: dict = {}
        only_eager = variants == ["base_eager"]  # its memory run holds no second copy
        t0 = time.perf_counter()
        model, tok = load_model(model_dir, "cpu", attn_implementation="eager" if only_eager else "sdpa")
        self.load_s = time.perf_counter() - t0
        arch = adapt(model)
        self.info.update(arch=model.config.model_type, n_layers=arch.n_layers, n_heads=arch.n_heads,
                         attn_implementation=model.config._attn_implementation)
        heads = prune_heads_for(arch.n_layers, arch.n_heads)
        self.info["pruned_heads"] = heads
        eager_arch = arch if only_eager else None
        if "base_eager" in variants and not only_eager:
            t0 = time.perf_counter()
            eager, _ = load_model(model_dir, "cpu", attn_implementation="eager")
            self.info["load_eager_s"] = time.perf_counter() - t0
            eager_arch = adapt(eager)

        def base_sdpa(w):
            with torch.inference_mode():
                arch.base(input_ids=w, use_cache=False)

        def lm_sdpa(w):
            with torch.inference_mode():
                model(input_ids=w, use_cache=False)

        def base_eager(w):
            with torch.inference_mode():
                eager_arch.base(input_ids=w, use_cache=False)

        def extract(w):
            analyse(model, tok, w, k=topk, heads=False)

        def heads_(w):
            head_scores(model, w)

        def extract_heads(w):
            analyse(model, tok, w, k=topk, heads=True)

        def extract_heads_means(w):
            analyse(model, tok, w, k=topk, heads=True, head_means=True)

        def prune(w):
            with ablate_heads(model, heads):
                analyse(model, tok, w, k=topk, heads=True)

        self.modules = [model] + ([eager_arch.base] if eager_arch and not only_eager else [])
        self.fns = {"base_sdpa": base_sdpa, "lm_sdpa": lm_sdpa, "base_eager": base_eager,
                    "extract": extract, "heads": heads_, "extract_heads": extract_heads,
                    "extract_heads_means": extract_heads_means, "prune": prune}


class TLStack:
    """TransformerLens: full cache, residual-stream cache, hook_z head ablation."""

    def __init__(self, stack: str, model_dir: str, variants: list[str]):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        import transformer_lens

        from importlib.metadata import version

        self.info = {"transformer_lens": version("transformer-lens")}
        t0 = time.perf_counter()
        tok = AutoTokenizer.from_pretrained(model_dir)
        if stack == "tl3":
            hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
            model, how = self._hooked_transformer(hf, tok, model_dir)
            del hf
            return_type = {"return_type": None}  # HookedTransformer skips the unembedding
        else:
            from transformer_lens import TransformerBridge

            hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                      attn_implementation="eager")
            model = TransformerBridge.boot_transformers(model_dir, hf_model=hf, tokenizer=tok,
                                                        device="cpu")
            how = "TransformerBridge.boot_transformers(dir, hf_model=...) (eager attention, logits always computed)"
            return_type = {}
        gc.collect()
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.load_s = time.perf_counter() - t0
        self.info["loading"] = how
        n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
        heads = prune_heads_for(n_layers, n_heads)
        self.info.update(n_layers=n_layers, n_heads=n_heads, pruned_heads=heads)
        by_layer: dict[int, list[int]] = {}
        for layer, h in heads:
            by_layer.setdefault(layer, []).append(h)

        def zero(hs):
            def hook(z, hook):  # z: (batch, pos, head, d_head)
                z[:, :, hs, :] = 0.0
                return z
            return hook

        ablation = [(f"blocks.{layer}.attn.hook_z", zero(hs)) for layer, hs in by_layer.items()]
        self.info["ablation_hooks"] = [name for name, _ in ablation]

        def cache_full(w):
            with torch.inference_mode():
                out = model.run_with_cache(w, **return_type)
            del out

        def cache_resid(w):
            with torch.inference_mode():
                out = model.run_with_cache(w, names_filter=resid_post, **return_type)
            del out

        def ablate(w):
            with torch.inference_mode(), model.hooks(fwd_hooks=ablation):
                out = model.run_with_cache(w, names_filter=resid_post, **return_type)
            del out

        def forward(w):
            with torch.inference_mode():
                model(w, **return_type)

        self.fns = {f"{stack}_cache_full": cache_full, f"{stack}_cache_resid": cache_resid,
                    f"{stack}_ablate": ablate, f"{stack}_forward": forward}
        self.model, self.ablation, self.model_dir = model, ablation, model_dir
        self.modules = [model]

    def check(self, w) -> dict:
        """Same model as Hugging Face's? Does the ablation change the residual stream?"""
        import torch
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32,
                                                  attn_implementation="eager").eval()
        m = self.model
        layer = m.cfg.n_layers // 2
        name = f"blocks.{layer}.hook_resid_post"
        with torch.inference_mode():
            ref = hf(input_ids=w, output_hidden_states=True).hidden_states[layer + 1]
            _, cache = m.run_with_cache(w, names_filter=resid_post)
            with m.hooks(fwd_hooks=self.ablation):
                _, abl = m.run_with_cache(w, names_filter=resid_post)
        last = f"blocks.{m.cfg.n_layers - 1}.hook_resid_post"
        return {"layer": layer,
                "max_abs_diff_vs_hf": float((cache[name] - ref).abs().max()),
                "max_abs_ref": float(ref.abs().max()),
                "ablation_max_abs_change_last_layer": float((abl[last] - cache[last]).abs().max())}

    @staticmethod
    def _hooked_transformer(hf, tok, model_dir):
        import torch
        from transformer_lens import HookedTransformer, HookedTransformerConfig
        from transformer_lens import loading_from_pretrained as loading

        kind = hf.config.model_type
        if kind == "gpt2":
            from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

            c = hf.config
            cfg = HookedTransformerConfig(
                n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
                d_mlp=c.n_inner or 4 * c.n_embd, n_ctx=c.n_positions, d_vocab=c.vocab_size,
                act_fn="gelu_new", normalization_type="LN", positional_embedding_type="standard",
                eps=c.layer_norm_epsilon, dtype=torch.float32, device="cpu")
            model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
            model.load_and_process_state_dict(convert_gpt2_weights(hf, cfg), fold_ln=False,
                                              center_writing_weights=False, center_unembed=False)
            return model, ("config-built HookedTransformer (HookedTransformerConfig with GPT-2 "
                           "small's shape), weights copied by TL's convert_gpt2_weights")
        if kind == "llama":
            # from_pretrained takes official names only; its loading helpers take a local
            # directory (the path must not contain 'llama'/'gemma': they sniff the name).
            cfg = loading.get_pretrained_model_config(model_dir, hf_cfg=hf.config.to_dict(),
                                                      fold_ln=False, dtype=torch.float32,
                                                      device="cpu")
            model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
            sd = loading.get_pretrained_state_dict(model_dir, cfg, hf, dtype=torch.float32)
            model.load_and_process_state_dict(sd, fold_ln=False, center_writing_weights=False,
                                              center_unembed=False)
            return model, ("HookedTransformer from TL's local-directory loaders "
                           "(get_pretrained_model_config + get_pretrained_state_dict with hf_model)")
        if kind == "gemma3_text":
            model = HookedTransformer.from_pretrained_no_processing(
                "google/gemma-3-270m", hf_model=hf, tokenizer=tok, dtype=torch.float32,
                device="cpu")
            return model, "HookedTransformer.from_pretrained_no_processing('google/gemma-3-270m', hf_model=...)"
        raise RuntimeError(f"no HookedTransformer loading path for {kind!r}")


# ---------------------------------------------------------------------------- main


def load_stack(args):
    variants = args.variants.split(",") if args.variants else []
    if args.stack == "massact":
        return MassactStack(args.model_dir, variants, args.topk)
    return TLStack(args.stack, args.model_dir, variants)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stack", required=True, choices=["massact", "tl3", "tl4"])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--windows", required=True, help=".npy file, int64 (n, seqlen)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--variants", default="", help="comma-separated (the massact stack loads "
                                                    "the eager model only when base_eager is asked)")
    ap.add_argument("--topk", type=int, default=10)
    ap.add_argument("--once", help="memory mode: run this variant once on window 0 and exit")
    ap.add_argument("--check", action="store_true",
                    help="TransformerLens stacks: compare with Hugging Face on window 0 and exit")
    args = ap.parse_args()

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("MASSACT_NO_PROGRESS", "1")

    def say(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    windows = torch.from_numpy(np.load(args.windows)).long()
    try:
        stack = load_stack(args)
    except Exception as e:
        say({"ready": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        sys.exit(1)
    gc.collect()
    common = {"ready": True, "stack": args.stack, "load_s": stack.load_s, "info": stack.info,
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "variants": sorted(stack.fns)}

    if args.check:
        say({**common, "check": stack.check(windows[0:1]) if hasattr(stack, "check") else None})
        return

    if args.once:
        fn = stack.fns[args.once]
        rss_lazy = proc_status_mb("VmRSS")  # transformers may leave safetensors weights mapped, unread
        t0 = time.perf_counter()
        touch(stack.modules)
        touch_s = time.perf_counter() - t0
        gc.collect()
        rss_loaded = proc_status_mb("VmRSS")
        peak_load = ru_maxrss_mb()
        reset = reset_peak_rss()
        t0 = time.perf_counter()
        fn(windows[0:1])
        wall = time.perf_counter() - t0
        say({**common, "variant": args.once, "wall": wall, "rss_after_load_untouched_mb": rss_lazy, "touch_s": touch_s,
             "rss_loaded_mb": rss_loaded,
             "peak_load_mb": peak_load, "peak_run_mb": proc_status_mb("VmHWM") if reset else None,
             "ru_maxrss_mb": ru_maxrss_mb(), "rss_after_mb": proc_status_mb("VmRSS"),
             "hwm_reset": reset})
        return

    say(common)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        if cmd["op"] == "run":
            fn = stack.fns[cmd["variant"]]
            w = windows[cmd["window"]:cmd["window"] + 1]
            try:
                c0, t0 = time.process_time(), time.perf_counter()
                fn(w)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                gc.collect()
                say({"ok": True, "wall": wall, "cpu": cpu, "rss_mb": proc_status_mb("VmRSS")})
            except Exception as e:
                say({"ok": False, "error": f"{type(e).__name__}: {e}",
                     "traceback": traceback.format_exc()})


if __name__ == "__main__":
    main()
