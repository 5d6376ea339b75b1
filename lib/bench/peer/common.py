"""Shared by the peer scripts: a transformers LlamaForCausalLM of an HF config.json on CUDA,
with HF's own random init (N(0, 0.02), norms 1), and a CUDA-event timer."""
import json

import torch
from transformers import LlamaConfig, LlamaForCausalLM

DROP = ("architectures", "torch_dtype", "dtype", "transformers_version", "model_type")


def load_config(path):
    with open(path) as f:
        return json.load(f)


def make_config(raw, attn):
    c = LlamaConfig(**{k: v for k, v in raw.items() if k not in DROP})
    try:
        c._attn_implementation = attn
    except Exception:  # older transformers
        c._attn_implementation_internal = attn
    return c


def build(raw, attn, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    with torch.device("cuda"):
        m = LlamaForCausalLM(make_config(raw, attn))
    return m.to(dtype)


def gpu_ms(fn, target_ms=250.0, max_n=200):
    """Milliseconds per call of fn (CUDA events; n calls sized to about target_ms)."""
    for _ in range(3):
        fn()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); fn(); e.record(); torch.cuda.synchronize()
    n = max(3, min(max_n, int(target_ms / max(s.elapsed_time(e), 0.01))))
    s.record()
    for _ in range(n):
        fn()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / n


def emit(out, record):
    """Prints one JSON line and appends it to the file `out`."""
    line = json.dumps(record)
    print(line, flush=True)
    with open(out, "a") as f:
        f.write(line + "\n")
