"""One Llama-style decoder layer with every linear layer a qmetal matmul.

The layer -- RMSNorm, q/k/v projections, RoPE, causal attention with
grouped-query heads over a short context, the o projection, RMSNorm, and a
SwiGLU MLP -- runs in NumPy around qmetal's quantized matmuls, on weights
loaded the two ways LLM runtimes get them:

* a GGUF file, as llama.cpp writes it: written here with ``gguf.GGUFWriter``,
  Q4_K for most matrices and Q6_K for attn_v and ffn_down (the mix of
  llama.cpp's Q4_K_M), float32 norms; loaded with ``qmetal.load_gguf``
  (one mapping, weights at their offsets). The o projection reads the
  attention output ``[heads, tokens, head_dim]`` in place
  (``heads_first=True``).
* an MLX model directory, as ``mlx_lm.convert`` writes it: config.json with
  ``"quantization"`` (4-bit, group size 64, and ``down_proj`` overridden to
  8 bits) and model.safetensors, written here with NumPy; loaded with
  ``qmetal.load_mlx``. Activations enter each matmul in the weights' dtype
  (float16), as runtimes keep them.

Each output is compared with the same layer computed in float64 on the
dequantized weights, and the time is split per op. Runs on the default
device; small sizes by default, so it runs in CI on the simulator::

    python examples/llama_layer.py
    python examples/llama_layer.py --hidden 4096 --heads 32 --kv-heads 8 --ffn 14336 --tokens 32   # on a Mac
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np

import qmetal

# The layer's linear weights: (GGUF name, MLX name) -> shape, from the sizes.
def linear_shapes(hidden, heads, kv_heads, ffn):
    head_dim = hidden // heads
    return {
        ("attn_q", "self_attn.q_proj"): (heads * head_dim, hidden),
        ("attn_k", "self_attn.k_proj"): (kv_heads * head_dim, hidden),
        ("attn_v", "self_attn.v_proj"): (kv_heads * head_dim, hidden),
        ("attn_output", "self_attn.o_proj"): (hidden, heads * head_dim),
        ("ffn_gate", "mlp.gate_proj"): (ffn, hidden),
        ("ffn_up", "mlp.up_proj"): (ffn, hidden),
        ("ffn_down", "mlp.down_proj"): (hidden, ffn),
    }


NORMS = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
Q6_K_TENSORS = ("attn_v", "ffn_down")     # Q4_K_M: these in Q6_K, the rest Q4_K
MLX_OVERRIDES = {"mlp.down_proj": 8}      # bits for these layers; the rest 4


class Timer:
    """Wall time per op, summed over calls."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def __call__(self, name, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] += time.perf_counter() - start
        return result


# --- the layer ---------------------------------------------------------------------------------------

def rms_norm(x, weight, eps):
    x64 = x.astype(np.float64) if x.dtype == np.float64 else x.astype(np.float32)
    return (x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + eps) * weight).astype(x.dtype)


def rope(x, theta):
    """Rotary embedding on x [heads, tokens, head_dim] at positions 0..T-1,
    rotating the two halves of each head (as MLX and Hugging Face Llama do;
    llama.cpp's GGUF converter permutes q/k so its interleaved form matches)."""
    _, tokens, head_dim = x.shape
    half = head_dim // 2
    inv_freq = theta ** (-np.arange(half, dtype=np.float64) / half)
    angles = np.arange(tokens, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(angles).astype(x.dtype), np.sin(angles).astype(x.dtype)
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def attention(q, k, v):
    """Causal softmax attention; q [heads, T, d], k and v [kv_heads, T, d]
    (grouped-query: each kv head serves heads / kv_heads query heads).
    Returns [heads, T, d]."""
    heads, tokens, head_dim = q.shape
    group = heads // k.shape[0]
    k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(head_dim)  # a Python float keeps float32 float32
    scores = np.where(np.tril(np.ones((tokens, tokens), bool)), scores, -np.inf)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (scores / scores.sum(axis=-1, keepdims=True)) @ v


def silu(x):
    return x / (1 + np.exp(-x))


def decoder_layer(x, linear, norms, config, timer, heads_first=False):
    """x [T, hidden] float32 -> [T, hidden]. `linear(name, h)` is h @ W.T for
    the named projection; `heads_first`: it also takes the attention output
    as [heads, T, head_dim] for the o projection."""
    heads, kv_heads, eps, theta = config["heads"], config["kv_heads"], config["eps"], config["theta"]
    tokens, hidden = x.shape
    head_dim = hidden // heads
    h = timer("rms_norm", rms_norm, x, norms["attn_norm"], eps)
    q = timer("q_proj", linear, "attn_q", h)
    k = timer("k_proj", linear, "attn_k", h)
    v = timer("v_proj", linear, "attn_v", h)
    split = lambda t, n: np.ascontiguousarray(t.reshape(tokens, n, head_dim).transpose(1, 0, 2))  # noqa: E731
    q, k, v = split(q, heads), split(k, kv_heads), split(v, kv_heads)
    q, k = timer("rope", rope, q, theta), timer("rope", rope, k, theta)
    o = timer("attention", attention, q, k, v)
    if heads_first:
        o = timer("o_proj", linear, "attn_output", np.ascontiguousarray(o), heads_first=True)
    else:
        o = timer("o_proj", linear, "attn_output", o.transpose(1, 0, 2).reshape(tokens, hidden))
    x = x + o
    h = timer("rms_norm", rms_norm, x, norms["ffn_norm"], eps)
    gate = timer("gate_proj", linear, "ffn_gate", h)
    up = timer("up_proj", linear, "ffn_up", h)
    a = timer("swiglu", lambda g, u: silu(g) * u, gate, up)
    return x + timer("down_proj", linear, "ffn_down", a)


# --- writing the two files ---------------------------------------------------------------------------

def random_layer(rng, hidden, heads, kv_heads, ffn):
    weights = {names: (rng.standard_normal(shape) / np.sqrt(shape[1])).astype(np.float32)
               for names, shape in linear_shapes(hidden, heads, kv_heads, ffn).items()}
    norms = {name: (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32) for name in NORMS}
    return weights, norms


def write_gguf(path, weights, norms, config):
    import gguf

    from qmetal import reference as ref

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_embedding_length(config["hidden"])
    writer.add_feed_forward_length(config["ffn"])
    writer.add_head_count(config["heads"])
    writer.add_head_count_kv(config["kv_heads"])
    writer.add_layer_norm_rms_eps(config["eps"])
    writer.add_rope_freq_base(config["theta"])
    for (name, _), w in weights.items():
        kind = "Q6_K" if name in Q6_K_TENSORS else "Q4_K"
        writer.add_tensor(f"blk.0.{name}.weight", ref.ggml_quantize(w, kind),
                          raw_dtype=gguf.GGMLQuantizationType[kind])
    for name, w in norms.items():
        writer.add_tensor(f"blk.0.{name}.weight", w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_safetensors(path, tensors):
    """A safetensors file (8-byte header length, JSON header, data), as
    mx.save_safetensors writes it, from NumPy arrays."""
    names = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.uint32): "U32"}
    header, blobs, offset = {"__metadata__": {"format": "mlx"}}, [], 0
    for name, array in sorted(tensors.items()):
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": names[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_mlx(directory, weights, norms, config):
    """model.safetensors and config.json as mlx_lm.convert writes them
    (float16 model, 4-bit with group size 64, down_proj at 8 bits)."""
    tensors = {}
    quantization = {"group_size": 64, "bits": 4}
    for (_, name), w in weights.items():
        bits = MLX_OVERRIDES.get(name, 4)
        layer = f"model.layers.0.{name}"
        if bits != 4:
            quantization[layer] = {"group_size": 64, "bits": bits}
        q = qmetal.quantize(w.astype(np.float16), bits, 64)  # bit-exact with mx.quantize
        tensors.update({f"{layer}.weight": q.packed, f"{layer}.scales": q.scales, f"{layer}.biases": q.biases})
    for name, w in norms.items():
        tensors[f"model.layers.0.{NORMS[name]}.weight"] = w.astype(np.float16)
    write_safetensors(os.path.join(directory, "model.safetensors"), tensors)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "hidden_size": config["hidden"], "intermediate_size": config["ffn"],
                   "num_attention_heads": config["heads"], "num_key_value_heads": config["kv_heads"],
                   "rms_norm_eps": config["eps"], "rope_theta": config["theta"], "num_hidden_layers": 1,
                   "quantization": quantization, "quantization_config": quantization}, f)


# --- running it --------------------------------------------------------------------------------------

def run_gguf(path, x, device):
    """The layer on the GGUF file's weights; and its config from the metadata."""
    model = qmetal.load_gguf(path, device=device)
    meta = model.metadata
    config = {"heads": meta["llama.attention.head_count"], "kv_heads": meta["llama.attention.head_count_kv"],
              "eps": meta["llama.attention.layer_norm_rms_epsilon"], "theta": meta["llama.rope.freq_base"]}
    weights = {name: model.tensors[f"blk.0.{name}.weight"] for name, _ in linear_shapes(1, 1, 1, 1)}
    norms = {name: model.tensors[f"blk.0.{name}.weight"] for name in NORMS}
    types = {name: w.type for name, w in weights.items()}

    def linear(name, h, heads_first=False):
        return qmetal.matmul(h, weights[name], heads_first=heads_first, device=device)

    def reference(name, h, heads_first=False):
        if heads_first:
            h = h.transpose(1, 0, 2).reshape(h.shape[1], -1)
        return h @ dense[name].T

    decoder_layer(x, linear, norms, config, Timer(), heads_first=True)  # warm-up: pipelines, caches
    timer = Timer()
    y = decoder_layer(x, linear, norms, config, timer, heads_first=True)
    dense = {name: qmetal.dequantize(w, np.float32, device=device).astype(np.float64) for name, w in weights.items()}
    expected = decoder_layer(x.astype(np.float64), reference, {n: w.astype(np.float64) for n, w in norms.items()},
                             config, Timer(), heads_first=True)
    return y, expected, timer, types


def run_mlx(directory, x, device):
    model = qmetal.load_mlx(directory, device=device)
    c = model.config
    config = {"heads": c["num_attention_heads"], "kv_heads": c["num_key_value_heads"], "eps": c["rms_norm_eps"],
              "theta": c["rope_theta"]}
    weights = {gguf_name: model.weights[f"model.layers.0.{name}"] for gguf_name, name in linear_shapes(1, 1, 1, 1)}
    norms = {name: model.weights[f"model.layers.0.{mlx_name}.weight"].astype(np.float32)
             for name, mlx_name in NORMS.items()}
    types = {name: f"affine {w.bits}-bit g{w.group_size}" for name, w in weights.items()}

    def linear(name, h):
        # Activations in the weights' dtype (float16), as runtimes keep them.
        return qmetal.matmul(h.astype(np.float16), weights[name], device=device).astype(np.float32)

    def reference(name, h):
        return h @ dense[name].T

    decoder_layer(x, linear, norms, config, Timer())  # warm-up
    timer = Timer()
    y = decoder_layer(x, linear, norms, config, timer)
    dense = {name: qmetal.dequantize(w, np.float32, device=device).astype(np.float64) for name, w in weights.items()}
    expected = decoder_layer(x.astype(np.float64), reference, {n: w.astype(np.float64) for n, w in norms.items()},
                             config, Timer())
    return y, expected, timer, types


def report(title, y, expected, timer, types, tolerance):
    error = float(np.linalg.norm(y - expected) / np.linalg.norm(expected))
    ok = bool(np.isfinite(error) and error < tolerance)
    print(f"{title}: relative error {error:.2e} against float64 on the dequantized weights "
          f"({'ok' if ok else 'TOO LARGE'}, limit {tolerance:.0e})")
    total = sum(timer.seconds.values())
    for op, seconds in sorted(timer.seconds.items(), key=lambda item: -item[1]):
        weight = next((t for name, t in types.items() if op.startswith(
            {"attn_q": "q", "attn_k": "k", "attn_v": "v", "attn_output": "o", "ffn_gate": "gate",
             "ffn_up": "up", "ffn_down": "down"}[name] + "_proj")), "")
        print(f"  {op:<11}{seconds * 1e3:>9.3f} ms {100 * seconds / total:>5.1f}%  {weight}")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=256, help="model width (a multiple of 256 for Q4_K)")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--ffn", type=int, default=512, help="MLP width (a multiple of 256)")
    parser.add_argument("--tokens", type=int, default=8, help="context length (the layer runs on all of it)")
    parser.add_argument("--backend", choices=["sim", "metal"], help="default: QMETAL_BACKEND, else the best available")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.hidden % 256 or args.ffn % 256 or args.hidden % args.heads or args.heads % args.kv_heads:
        parser.error("hidden and ffn must be multiples of 256, hidden of heads, heads of kv-heads")
    device = qmetal.get_device(args.backend) if args.backend else qmetal.default_device()
    rng = np.random.default_rng(args.seed)
    config = {"hidden": args.hidden, "heads": args.heads, "kv_heads": args.kv_heads, "ffn": args.ffn,
              "eps": 1e-5, "theta": 10000.0}
    weights, norms = random_layer(rng, args.hidden, args.heads, args.kv_heads, args.ffn)
    x = rng.standard_normal((args.tokens, args.hidden)).astype(np.float32)
    print(f"qmetal {qmetal.__version__} on {device.name} ({device.backend}): one Llama layer, hidden {args.hidden}, "
          f"{args.heads} heads ({args.kv_heads} kv), MLP {args.ffn}, {args.tokens} tokens")
    if device.backend == "sim":
        print("note: the CPU simulator, not a GPU: the times show where the work is, not how fast a Mac runs it")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.gguf")
        write_gguf(path, weights, norms, config)
        ok = report("GGUF (Q4_K_M mix)", *run_gguf(path, x, device), tolerance=1e-4)
        write_mlx(tmp, weights, norms, config)
        # float16 activations: each matmul's input and output rounded to half.
        ok &= report("MLX (affine, float16)", *run_mlx(tmp, x, device), tolerance=1e-2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
