#!/usr/bin/env bash
# gpu_peer.sh: the engine's own benchmarks on an NVIDIA GPU beside PyTorch on the same shapes,
# as one table of ratios (`deno task peer [OUT_DIR]`, or `bash lib/bench/peer/gpu_peer.sh`).
#
# Runs, in this order, each under a time limit so that the whole stays under 8 minutes (BUDGET
# seconds, default 450; a step that no longer fits is skipped and marked SKIPPED):
#   gpu-probe        the project's adapter check (a CPU adapter aborts the run)
#   bench-matmul     the engine's matmul dispatchers at 4096^3, 3B training and decode shapes,
#                    beside the 64x64 tiled kernel, with the bit checks (bits.json)
#   torch_matmul     torch.matmul on the same shapes (f32 with TF32 off, TF32, bf16)
#   bench-model x2   Llama-3.2-3B-shaped synthetic weights, decode and prefill at batch 1 and 32
#   hf_decode        transformers generate on random weights of the same config, timed alike
#   bench-train      a SmolLM2-135M-shaped training step (4 x 1024 tokens) ...
#   torch_train      ... and PyTorch eager f32 on the same shapes
#   parity           `model logits` vs LlamaForCausalLM (f64) on the same random safetensors
#   bench-attention  the attention kernels at 3B shapes, blocked vs per-(row, head), bit checks
#   bench-model      decode at batch 1 with precision bf16 (packed compute copies)
#   (if time is left) bench-train and torch_train at 3B shapes, parity at 3B shapes (2 layers)
# then lib/bench/peer/summarize.py prints the table (also in OUT_DIR/summary.txt).
#
# Needs: the NVIDIA driver with its Vulkan ICD, python3 with CUDA torch, transformers and
# safetensors, and Deno: `deno` on PATH, or the .device/ folder that ../shared/device/prepare.sh
# makes on a machine with network (this script then runs Deno through .device/run.sh). Nothing is
# written inside the checkout: bundles, weights and logs go under OUT_DIR.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
PEER="$ROOT/lib/bench/peer"
OUT=${1:-/tmp/selfplay-peer-$(date +%Y%m%d-%H%M%S)}
PY=${PY:-python3}
BUDGET=${BUDGET:-450}
if [ -z "${DENO_RUN:-}" ]; then
  if command -v deno >/dev/null; then DENO_RUN="deno run -A"
  elif [ -f "$ROOT/.device/run.sh" ]; then
    DENO_RUN="bash $ROOT/.device/run.sh run -A --cached-only --no-lock --node-modules-dir=none"
  else echo "gpu_peer: no deno on PATH and no .device/run.sh (see ../shared/device/README.md)"; exit 2
  fi
fi
T0=$SECONDS
mkdir -p "$OUT"/{logs,bundles,parity}
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "[$((SECONDS - T0))s] $*" | tee -a "$SUMMARY"; }

# NVIDIA Vulkan only: lavapipe would be picked silently on a machine that has both ICDs.
if [ -z "${VK_ICD_FILENAMES:-}" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
    /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$f" ] && export VK_ICD_FILENAMES="$f" VK_DRIVER_FILES="$f" && break
  done
fi
export DENO_WEBGPU_BACKEND=${DENO_WEBGPU_BACKEND:-vulkan}
unset SELFPLAY_KERNELS # the adapter decides: "workgroup" on a GPU

# step NAME MAX_SECONDS CMD...: runs CMD (log in logs/NAME.log) under the smaller of MAX_SECONDS
# and what is left of the budget; skips it when fewer than 20 s are left.
step() {
  local name=$1 max=$2
  shift 2
  local left=$((BUDGET - (SECONDS - T0)))
  local lim=$((max < left ? max : left))
  if [ "$lim" -lt 20 ]; then
    note "SKIPPED $name (budget)"
    echo SKIPPED >"$OUT/logs/$name.status"
    return 0
  fi
  note "start $name (limit ${lim}s)"
  local t=$SECONDS
  (cd "$ROOT" && timeout --kill-after=10 "$lim" "$@") >"$OUT/logs/$name.log" 2>&1
  local rc=$?
  echo "$rc" >"$OUT/logs/$name.status"
  note "end   $name rc=$rc ($((SECONDS - t))s)"
}
bundle() { echo "$OUT/bundles/$1"; }

CFG3B="$ROOT/experiments/assets/lsp/llama-3.2-3b-instruct-config.json"
SMOL="$ROOT/experiments/assets/bench/smollm2-135m-config.json"
MATMUL=bench-matmul
ATTENTION=bench-attention
TOKENS=1024
# PEER_SMOKE=1 checks this script's plumbing on any machine (a CPU adapter included): the tiny
# bench-matmul-cpu shapes, bench-model's small config for both models, 64-token rows. Its
# figures mean nothing.
if [ -n "${PEER_SMOKE:-}" ]; then
  SMALL="$OUT/small-config.json"
  (cd "$ROOT" && $DENO_RUN main.ts exp bench-model --dry-run 2>/dev/null) |
    $PY -c "import json,sys; json.dump(json.load(sys.stdin)['config'], open('$SMALL','w'))"
  CFG3B=$SMALL SMOL=$SMALL MATMUL=bench-matmul-cpu ATTENTION=bench-attention-cpu TOKENS=64
fi
note "OUT=$OUT ROOT=$ROOT DENO_RUN=$DENO_RUN VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-unset}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$SUMMARY"
$PY -c "import torch, transformers, safetensors; print('torch', torch.__version__, 'cuda', \
torch.version.cuda, 'transformers', transformers.__version__)" 2>&1 | tee -a "$SUMMARY"

step gpu-probe 90 $DENO_RUN main.ts exp gpu-probe --out "$(bundle gpu-probe)"
if [ -z "${PEER_SMOKE:-}" ] && grep -qiE "llvmpipe|lavapipe|swiftshader" "$OUT/logs/gpu-probe.log"; then
  note "ABORT: WebGPU picked a CPU adapter; point VK_ICD_FILENAMES at the NVIDIA ICD"
  exit 3
fi

# (a) matmul: the engine (its manifest's shapes) and torch on the same resolved shapes.
(cd "$ROOT" && $DENO_RUN main.ts exp $MATMUL --dry-run >"$OUT/logs/bench-matmul.manifest.json" \
  2>/dev/null)
step bench-matmul 150 $DENO_RUN main.ts exp $MATMUL --out "$(bundle bench-matmul)" \
  --set repeats=3 --set targetMs=100
step torch_matmul 90 $PY "$PEER/torch_matmul.py" "$OUT/logs/bench-matmul.manifest.json" \
  "$OUT/logs/torch_matmul.jsonl"

# (b) decode and prefill: bench-model at the 3B config (synthetic N(0, 0.02) f32 weights,
# prompts of 64 tokens, 65 new, temperature 1, top-p 1, a readback every 8 steps; decode segments
# pipelined and not, alternately) and HF.
for b in 1 32; do
  step "bench-model-b$b" 150 $DENO_RUN main.ts exp bench-model --out "$(bundle bench-model-b$b)" \
    --set config="$CFG3B" --set batch=$b --set promptLen=64 --set newTokens=65 \
    --set readbackEvery=8 --set warmup=1 --set repeats=2 --set pipelined=both
done
step hf_decode 150 $PY "$PEER/hf_decode.py" "$CFG3B" "$OUT/logs/hf_decode.jsonl"

# (c) a training step at SmolLM2-135M shapes, 4 x 1024 tokens, no recomputation.
step bench-train-smol 120 $DENO_RUN main.ts exp bench-train --out "$(bundle bench-train-smol)" \
  --set config="$SMOL" --set batch=4 --set seqLen=$TOKENS --set recompute=false \
  --set warmup=1 --set repeats=3
step torch_train_smol 90 $PY "$PEER/torch_train.py" "$SMOL" 4 $TOKENS eager \
  "$OUT/logs/torch_train.jsonl"

# (d) logits parity at SmolLM2 shapes (30 layers, 256 tokens).
P1="$OUT/parity/smollm2"
step parity_make_smol 60 $PY "$PEER/parity.py" make "$SMOL" "$P1" 256 0
[ -f "$P1/tokens.txt" ] && step parity_engine_smol 90 $DENO_RUN main.ts model logits \
  --model "$P1" --tokens "$(cat "$P1/tokens.txt")" --out "$P1/logits_selfplay.safetensors"
[ -f "$P1/logits_selfplay.safetensors" ] && step parity_compare_smol 60 $PY "$PEER/parity.py" \
  compare "$P1" "$OUT/logs/parity.jsonl"

# (e) the attention kernels at 3B shapes (blocked vs per-(row, head), with bit checks) and decode
# with precision bf16 (packed compute copies: half the weight bytes) at batch 1.
step bench-attention 90 $DENO_RUN main.ts exp $ATTENTION --out "$(bundle bench-attention)"
step bench-model-bf16-b1 120 $DENO_RUN main.ts exp bench-model \
  --out "$(bundle bench-model-bf16-b1)" --set config="$CFG3B" --set batch=1 --set promptLen=64 \
  --set newTokens=65 --set readbackEvery=8 --set warmup=1 --set repeats=2 \
  --set precision.weights=bf16

# If time is left: the 3B training step (1 x 512, recompute) and 3B parity cut to 2 layers.
step bench-train-3b 150 $DENO_RUN main.ts exp bench-train --out "$(bundle bench-train-3b)" \
  --set config="$CFG3B" --set batch=1 --set seqLen=512 --set recompute=true \
  --set warmup=1 --set repeats=2
step torch_train_3b 120 $PY "$PEER/torch_train.py" "$CFG3B" 1 512 sdpa "$OUT/logs/torch_train.jsonl"
P2="$OUT/parity/llama3b-2layers"
step parity_make_3b 60 $PY "$PEER/parity.py" make "$CFG3B" "$P2" 160 2
[ -f "$P2/tokens.txt" ] && step parity_engine_3b 90 $DENO_RUN main.ts model logits \
  --model "$P2" --tokens "$(cat "$P2/tokens.txt")" --out "$P2/logits_selfplay.safetensors"
[ -f "$P2/logits_selfplay.safetensors" ] && step parity_compare_3b 60 $PY "$PEER/parity.py" \
  compare "$P2" "$OUT/logs/parity.jsonl"

$PY "$PEER/summarize.py" "$OUT" | tee -a "$SUMMARY"
note "done in $((SECONDS - T0)) s; everything is under $OUT (summary.txt, logs/, bundles/)"
