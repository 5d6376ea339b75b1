"""torch.matmul on the shapes of a bench-matmul run (its resolved manifest, from `exp
bench-matmul --dry-run`): f32 with TF32 off (the engine's arithmetic), TF32, and bf16.
Usage: torch_matmul.py MANIFEST_JSON OUT_JSONL"""
import json
import sys

import torch

from common import emit, gpu_ms

manifest, out = json.load(open(sys.argv[1])), sys.argv[2]
emit(out, {"kind": "device", "name": torch.cuda.get_device_name(), "torch": torch.__version__})
for prec in ("f32", "tf32", "bf16"):
    torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
    dt = torch.bfloat16 if prec == "bf16" else torch.float32
    seen = set()
    for s in manifest["shapes"]:
        op = {"forwardBf16": "forward", "gradInputBf16": "gradInput"}.get(s["op"], s["op"])
        key = (s["name"], op, s["M"], s["K"], s["N"])
        if key in seen:
            continue
        seen.add(key)
        M, K, N = s["M"], s["K"], s["N"]
        g = torch.Generator(device="cuda").manual_seed(0)
        r = lambda *shape: torch.randn(*shape, device="cuda", dtype=dt, generator=g)
        if op == "forward":
            x, w, y = r(M, K), r(N, K), torch.empty(M, N, device="cuda", dtype=dt)
            fn = lambda: torch.matmul(x, w.t(), out=y)
        elif op == "gradInput":
            dy, w, dx = r(M, N), r(N, K), torch.empty(M, K, device="cuda", dtype=dt)
            fn = lambda: torch.matmul(dy, w, out=dx)
        else:
            dy, x, dw = r(M, N), r(M, K), torch.empty(N, K, device="cuda", dtype=dt)
            fn = lambda: torch.matmul(dy.t(), x, out=dw)
        ms = gpu_ms(fn)
        emit(out, {"kind": "matmul", "prec": prec, "name": s["name"], "op": op, "M": M, "K": K,
                   "N": N, "ms": ms, "gflops": 2 * M * K * N / (ms * 1e6)})
        del fn
        torch.cuda.empty_cache()
