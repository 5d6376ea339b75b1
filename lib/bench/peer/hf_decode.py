"""transformers generate on random weights of a config, timed as the engine's bench-model times
itself: decode tok/s = B * (NEW - 1) / (t(generate NEW tokens) - t(generate 1 token)), prompts of
PROMPT tokens, sampling at temperature 1, top-p 1. Usage: hf_decode.py CONFIG OUT_JSONL"""
import statistics
import sys
import time

import torch

from common import build, emit, load_config

raw, out = load_config(sys.argv[1]), sys.argv[2]
PROMPT, NEW, V = 64, 65, raw["vocab_size"]
for dname, dtype in (("bf16", torch.bfloat16), ("f32", torch.float32)):
    torch.backends.cuda.matmul.allow_tf32 = False
    m = build(raw, "sdpa", dtype).eval()
    for B in (1, 32):
        ids = torch.tensor([[(7 * b + 13 * i) % V for i in range(PROMPT)] for b in range(B)],
                           device="cuda")

        def gen(n):
            torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.inference_mode():
                o = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                               max_new_tokens=n, min_new_tokens=n, do_sample=True,
                               temperature=1.0, top_p=1.0, top_k=0, pad_token_id=0)
            torch.cuda.synchronize()
            assert o.shape[1] == PROMPT + n, o.shape
            return time.perf_counter() - t

        gen(1); gen(NEW)
        pre = statistics.median([gen(1) for _ in range(2)])
        full = statistics.median([gen(NEW) for _ in range(2)])
        emit(out, {"kind": "hf_decode", "dtype": dname, "batch": B,
                   "prefillTokensPerSecond": B * PROMPT / pre,
                   "decodeTokensPerSecond": B * (NEW - 1) / max(full - pre, 1e-9)})
    del m
    torch.cuda.empty_cache()
