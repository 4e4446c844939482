"""Random models of every supported family, built from a config (no download), and the
byte-level tokenizer they use: the tests' and CI's models."""

from __future__ import annotations

from .errors import UserError
from .names import RANDOM_SIZES, dtype_of


def byte_tokenizer(add_bos: bool):
    """A 258-token byte-level tokenizer (256 bytes, <bos>, <eos>) built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab["<bos>"], vocab["<eos>"] = 256, 257
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    if add_bos:
        tk.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                          special_tokens=[("<bos>", 256)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>")


def random_config(arch: str, size: str | dict):
    """A Hugging Face config of ``arch`` (a family of :data:`massact.arch.LAYOUTS`) at a
    named size (:data:`RANDOM_SIZES`) or a dict of ``hidden``, ``layers``, ``heads``,
    ``intermediate``, ``positions`` and optionally ``kv_heads``, ``vocab``,
    ``sliding_window``, ``tied``. Every bias a family can have is switched on."""
    import transformers as tf

    s = dict(RANDOM_SIZES[size]) if isinstance(size, str) else dict(size)
    h, n, heads, inter, pos = (s[k] for k in ("hidden", "layers", "heads", "intermediate",
                                              "positions"))
    kv, vocab, window = s.get("kv_heads", max(1, heads // 2)), s.get("vocab", 258), s.get(
        "sliding_window", 16)
    ids = dict(vocab_size=vocab, bos_token_id=256, eos_token_id=257, pad_token_id=0)
    common = dict(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads,
                  intermediate_size=inter, max_position_embeddings=pos, **ids)
    gqa = dict(common, num_key_value_heads=kv)
    # Gemma's pattern: sliding-window layers with a global layer every few
    alternating = ["full_attention" if (i + 1) % 2 == 0 else "sliding_attention" for i in range(n)]
    builders = {
        "gpt2": lambda: tf.GPT2Config(n_embd=h, n_layer=n, n_head=heads, n_inner=inter,
                                      n_positions=pos, **ids),
        "llama": lambda: tf.LlamaConfig(**gqa, attention_bias=True, mlp_bias=True,
                                        tie_word_embeddings=s.get("tied", True)),
        "mistral": lambda: tf.MistralConfig(**gqa, sliding_window=window),
        "mixtral": lambda: tf.MixtralConfig(**gqa, num_local_experts=4, num_experts_per_tok=2),
        "qwen2": lambda: tf.Qwen2Config(**gqa),
        "qwen3": lambda: tf.Qwen3Config(**gqa, head_dim=h // heads, attention_bias=True),
        "gemma2": lambda: tf.Gemma2Config(**dict(gqa, num_key_value_heads=1), head_dim=h // heads,
                                          sliding_window=window, layer_types=alternating,
                                          attention_bias=True),
        "gemma3": lambda: tf.Gemma3TextConfig(**dict(gqa, num_key_value_heads=1),
                                              head_dim=h // heads, sliding_window=window,
                                              layer_types=alternating, attention_bias=True),
        "phi": lambda: tf.PhiConfig(**common),
        "gpt_neox": lambda: tf.GPTNeoXConfig(**common),
        "falcon": lambda: tf.FalconConfig(hidden_size=h, num_hidden_layers=n,
                                          num_attention_heads=heads, ffn_hidden_size=inter,
                                          max_position_embeddings=pos, bias=True, **ids),
        "opt": lambda: tf.OPTConfig(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads,
                                    ffn_dim=inter, max_position_embeddings=pos,
                                    word_embed_proj_dim=h, **ids),
        "mpt": lambda: tf.MptConfig(d_model=h, n_layers=n, n_heads=heads, max_seq_len=pos,
                                    expansion_ratio=inter // h, no_bias=False, **ids),
        "gptj": lambda: tf.GPTJConfig(n_embd=h, n_layer=n, n_head=heads, n_inner=inter,
                                      n_positions=pos, rotary_dim=h // heads // 2, **ids),
    }
    if arch not in builders:
        raise UserError(f"random models support {', '.join(builders)}, not {arch!r}")
    return builders[arch]()


def build_random(spec: dict):
    """A random model of ``spec``'s architecture and size, built directly in its dtype
    (a bfloat16 model never exists as a float32 copy)."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = random_config(spec["arch"], spec.get("size", "tiny"))
    torch.manual_seed(int(spec.get("seed", 0)))
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype_of(spec))
    with torch.no_grad():  # biases and norms random too: a bias bug must show
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, 0.02)
            elif "norm" in name or ".ln_" in name or name.startswith("ln_"):
                p.add_(torch.randn_like(p), alpha=0.1)
    return model, byte_tokenizer(add_bos=spec["arch"] in ("gemma2", "gemma3"))
