"""One table of the engine beside PyTorch from a gpu_peer.sh output folder: bundles/ (the
project's bench bundles) and logs/ (the PyTorch JSON lines). Missing parts print as missing.
Usage: summarize.py OUT_DIR"""
import glob
import json
import os
import sys

O = sys.argv[1]


def lines(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    except FileNotFoundError:
        return []


def bundle_json(name, file):
    path = f"{O}/bundles/{name}/{file}"
    return json.load(open(path)) if os.path.exists(path) else None


def ratio(a, b):
    return f"{a / b:7.2f}x" if a and b else "      -"


def pct(f):
    return f"{100 * f:6.1f}%" if isinstance(f, (int, float)) else "      -"


rows = []  # (section, case, engine, unit, peer, peer label, engine/peer, fraction of limit)
dev = next((r for r in lines(f"{O}/logs/torch_matmul.jsonl") if r["kind"] == "device"), {})
probe = bundle_json("gpu-probe", "provenance.json") or {}
adapter = (probe.get("gpu") or {}).get("description") or "?"
print(f"GPU (torch): {dev.get('name', '?')}   WebGPU adapter: {adapter}")

mm = bundle_json("bench-matmul", "bench.json")
torch_mm = {(r["prec"], r["name"], r["op"], r["M"], r["K"], r["N"]): r
            for r in lines(f"{O}/logs/torch_matmul.jsonl") if r["kind"] == "matmul"}
if mm:
    print(f"peaks: {mm['peaks']}")
    for c in mm["cases"]:
        if c["kernel"] != "engine":
            continue
        op = {"forwardBf16": "forward", "gradInputBf16": "gradInput"}.get(c["op"], c["op"])
        t = torch_mm.get(("f32", c["name"], op, c["M"], c["K"], c["N"]), {}).get("gflops")
        tb = torch_mm.get(("bf16", c["name"], op, c["M"], c["K"], c["N"]), {}).get("gflops")
        tiled = next((s["ratio"] for s in mm["engineSpeedup"] if s["name"] == c["name"]
                      and s["op"] == c["op"] and s["M"] == c["M"]), None)
        case = f"{c['name']} {c['op']} {c['M']}x{c['K']}x{c['N']}"
        rows.append(("matmul GFLOP/s", case, c["gflops"], "GFLOP/s", t, "torch f32",
                     ratio(c["gflops"], t), pct(c["fractionOfF32Peak"]),
                     f"bandwidth {pct(c['fractionOfBandwidth']).strip()}, "
                     f"engine/tiled kernel {tiled or 0:.2f}x, torch bf16 {tb or 0:.0f} GFLOP/s"))
bits = bundle_json("bench-matmul", "bits.json")
hf = lines(f"{O}/logs/hf_decode.jsonl")
for b in (1, 32):
    e = bundle_json(f"bench-model-b{b}", "bench.json")
    h32 = next((r for r in hf if r["batch"] == b and r["dtype"] == "f32"), {})
    h16 = next((r for r in hf if r["batch"] == b and r["dtype"] == "bf16"), {})
    if e:
        rows.append(("decode tok/s", f"3B batch {b}", e["decodeTokensPerSecond"], "tok/s",
                     h32.get("decodeTokensPerSecond"), "HF f32",
                     ratio(e["decodeTokensPerSecond"], h32.get("decodeTokensPerSecond")),
                     pct(e.get("decodeFractionOfCeiling")),
                     f"HF bf16 {h16.get('decodeTokensPerSecond', 0):.1f} tok/s, "
                     f"{e['dispatchesPerDecodedToken']:.0f} dispatches/token"
                     + (f", not pipelined {e['pipelining']['offDecodeTokensPerSecond']:.1f} "
                        f"tok/s (pipelined/not {e['pipelining']['ratio']:.2f}x)"
                        if e.get("pipelining") else "")))
        rows.append(("prefill tok/s", f"3B batch {b}", e["prefillTokensPerSecond"], "tok/s",
                     h32.get("prefillTokensPerSecond"), "HF f32",
                     ratio(e["prefillTokensPerSecond"], h32.get("prefillTokensPerSecond")),
                     pct(e.get("prefillFractionOfF32Peak")), ""))
    else:
        rows.append(("decode tok/s", f"3B batch {b}", None, "", None, "", "", "", "missing"))
e16 = bundle_json("bench-model-bf16-b1", "bench.json")
e32 = bundle_json("bench-model-b1", "bench.json")
if e16:
    rows.append(("decode tok/s", "3B batch 1, precision bf16", e16["decodeTokensPerSecond"], "tok/s",
                 e32 and e32["decodeTokensPerSecond"], "engine f32",
                 ratio(e16["decodeTokensPerSecond"], e32 and e32["decodeTokensPerSecond"]),
                 pct(e16.get("decodeFractionOfCeiling")), "ceiling counts 2 bytes a weight"))
att = bundle_json("bench-attention", "bench.json")
for c in (att or {}).get("cases", []):
    if c["kernel"] != "blocked":
        continue
    row = next((r for r in att["cases"] if r["kernel"] == "rowwise" and r["name"] == c["name"]
                and r["pass"] == c["pass"] and r["B"] == c["B"] and r["S"] == c["S"]), {})
    rows.append(("attention GFLOP/s", f"{c['name']} {c['pass']} B{c['B']} S{c['S']}",
                 c["gflops"], "GFLOP/s", row.get("gflops"), "per-(row, head) kernel",
                 ratio(c["gflops"], row.get("gflops")), pct(c.get("fractionOfF32Peak")),
                 f"bandwidth {pct(c.get('fractionOfBandwidth')).strip()}"))
tt = lines(f"{O}/logs/torch_train.jsonl")
for name, cfg in (("bench-train-smol", "smollm2"), ("bench-train-3b", "llama-3.2-3b")):
    e = bundle_json(name, "bench.json")
    t = next((r for r in tt if cfg in r["config"] and r["attn"] == "eager"), None) or \
        next((r for r in tt if cfg in r["config"]), {})
    if e:
        rows.append(("train tok/s", name, e["trainTokensPerSecond"], "tok/s",
                     t.get("trainTokensPerSecond"), f"torch eager f32 ({t.get('attn', '-')})",
                     ratio(e["trainTokensPerSecond"], t.get("trainTokensPerSecond")),
                     pct(e.get("trainFractionOfF32Peak")),
                     f"step {e['seconds']['train']:.3f} s vs {t.get('trainSeconds', 0):.3f} s"))
    else:
        rows.append(("train tok/s", name, None, "", None, "", "", "", "missing"))

print(f"\n{'what':15} {'case':40} {'engine':>10} {'unit':7} {'peer':>10} "
      f"{'engine/peer':>11} {'of limit':>8}  notes")
for sec, case, ev, unit, pv, plabel, r, frac, note in rows:
    evs = f"{ev:10.1f}" if ev is not None else "   missing"
    pvs = f"{pv:10.1f}" if pv is not None else "         -"
    print(f"{sec:15} {case:40} {evs} {unit:7} {pvs} {r:>11} {frac:>8}  peer: {plabel}; {note}")

print("\nbit checks (bench-matmul bits.json: rows at small M vs M = 3200, reruns):")
if bits:
    for c in bits["checks"]:
        print(f"  {c['op']:12} rows {c['rows']} rerun mismatches {c['rerunMismatches']} "
              f"vs the 64x64 tiled kernel {c.get('tiledKernelMismatches', '?')}")
else:
    print("  missing")
abits = bundle_json("bench-attention", "bits.json")
if abits:
    print("\nattention bit checks (bench-attention bits.json: blocked vs per-(row, head), reruns):")
    for c in abits["checks"]:
        print(f"  {c['name']} {c['pass']:9} B{c['B']} S{c['S']} words {c['words']}: "
              f"mismatches {c['rowwiseMismatches']}, rerun {c['rerunMismatches']}")
print("\nlogits parity (engine vs transformers; target: within 1e-4 relative of f64):")
for r in lines(f"{O}/logs/parity.jsonl"):
    for k in ("engineVsF64", "torchF32VsF64", "engineVsTorchF32"):
        c = r[k]
        print(f"  {os.path.basename(r['dir']):18} layers {r['layers']:3} {k:18} "
              f"maxAbs/max|ref| {c['maxAbsOverMaxRef']:.2e}  maxRel {c['maxRel']:.2e}  "
              f"argmax agree {c['argmaxAgree']:.3f}")
status = {os.path.basename(p)[:-7]: open(p).read().strip()
          for p in sorted(glob.glob(f"{O}/logs/*.status"))}
print("\nstep exit codes:", status)
