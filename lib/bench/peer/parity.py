"""Logits parity of the engine against transformers' LlamaForCausalLM on the same random weights.
  parity.py make CONFIG DIR TOKENS LAYERS   random HF weights (F32 safetensors), config.json and
                                            a token list (LAYERS > 0 cuts the config's layers)
  parity.py compare DIR OUT_JSONL           DIR/logits_selfplay.safetensors (`model logits`) vs
                                            transformers in f64 (eager attention) and in f32"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

from common import build, emit, load_config

mode = sys.argv[1]
if mode == "make":
    cfg, d, T, layers = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    raw = load_config(cfg)
    if layers > 0:
        raw["num_hidden_layers"] = layers
    os.makedirs(d, exist_ok=True)
    json.dump(raw, open(f"{d}/config.json", "w"), indent=1)
    m = build(raw, "eager", seed=1234)
    sd = {k: v.detach().float().cpu().contiguous() for k, v in m.state_dict().items()
          if "rotary_emb" not in k
          and not (raw.get("tie_word_embeddings") and k == "lm_head.weight")}
    save_file(sd, f"{d}/model.safetensors", metadata={"format": "pt"})
    toks = [(7 + 13 * i * i + 31 * i) % raw["vocab_size"] for i in range(T)]
    json.dump(toks, open(f"{d}/tokens.json", "w"))
    open(f"{d}/tokens.txt", "w").write(",".join(map(str, toks)))
else:
    d, out = sys.argv[2], sys.argv[3]
    raw = load_config(f"{d}/config.json")
    m = build(raw, "eager")
    missing, unexpected = m.load_state_dict(load_file(f"{d}/model.safetensors", device="cuda"),
                                            strict=False)
    assert not unexpected and all(k == "lm_head.weight" or "rotary_emb" in k for k in missing), \
        (missing, unexpected)
    m.tie_weights()
    m.eval()
    toks = torch.tensor([json.load(open(f"{d}/tokens.json"))], device="cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        f32 = m(toks).logits[0].double()
        f64 = m.double()(toks).logits[0]
    ours = load_file(f"{d}/logits_selfplay.safetensors")["logits"].cuda().double()
    assert ours.shape == f64.shape, (ours.shape, f64.shape)

    def cmp(a, b):
        dd = (a - b).abs()
        scale = b.abs().max()
        return {"maxAbsOverMaxRef": (dd.max() / scale).item(),
                "maxRel": (dd / b.abs().clamp_min(1e-3 * scale)).max().item(),
                "argmaxAgree": (a.argmax(-1) == b.argmax(-1)).double().mean().item()}

    emit(out, {"kind": "parity", "dir": d, "T": toks.shape[1],
               "layers": raw["num_hidden_layers"], "engineVsF64": cmp(ours, f64),
               "torchF32VsF64": cmp(f32, f64), "engineVsTorchF32": cmp(ours, f32)})
