"""A PyTorch eager f32 (TF32 off) training step on bench-train's shapes: forward, mean
next-token NLL, backward, clip at 1.0, AdamW (lr 1e-5, no decay), the same token pattern.
Usage: torch_train.py CONFIG BATCH SEQ_LEN ATTN OUT_JSONL"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from common import build, emit, load_config

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
cfg, B, S, attn, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
raw = load_config(cfg)
V = raw["vocab_size"]
m = build(raw, attn).train()
flat = torch.tensor([(31 * i + 7) % V for i in range(B * S)], device="cuda")
tok, tgt = flat.view(B, S), torch.roll(flat, -1).view(B, S)
opt = torch.optim.AdamW(m.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def forward():
    with torch.no_grad():
        lg = m(input_ids=tok, use_cache=False).logits.float()
        return torch.log_softmax(lg, -1).gather(-1, tgt.unsqueeze(-1)).sum().item()


def step():
    opt.zero_grad(set_to_none=False)
    lg = m(input_ids=tok, use_cache=False).logits.float()
    loss = F.cross_entropy(lg.view(-1, V), tgt.view(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    return loss.item()


def seconds(fn):
    torch.cuda.synchronize()
    s = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - s


forward(); step()
tf = statistics.median([seconds(forward) for _ in range(3)])
ts = statistics.median([seconds(step) for _ in range(3)])
emit(out, {"kind": "torch_train", "config": cfg, "batch": B, "seqLen": S, "attn": attn,
           "forwardSeconds": tf, "trainSeconds": ts, "trainTokensPerSecond": B * S / ts,
           "peakGB": torch.cuda.max_memory_allocated() / 1e9})
