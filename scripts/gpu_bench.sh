#!/usr/bin/env bash
# Every GPU benchmark of the performance work in one run (~6-7 min on one H100/H200); results as JSON in $OUT.
#   OUT=results/gpu bash scripts/gpu_bench.sh            (uses ./.venv/bin/python unless PYTHON is set)
#   DRY_RUN=1 OUT=/tmp/gpu bash scripts/gpu_bench.sh     (tiny sizes on the CPU, no torch.compile: checks the script)
# Random weights throughout (nothing is downloaded); the paper's set-up: RRDB-23 + U-Net D + VGG19 + GAN,
# batch 12, GT crop 256, K = 5 candidates, MUSIQ.
set -euo pipefail
usage() {
    cat <<'EOF'
Usage: OUT=DIR [PYTHON=python] [DRY_RUN=1] bash scripts/gpu_bench.sh [-h|--help]

Runs every GPU benchmark of the performance work (~6-7 min on one H100/H200) and writes JSON results to
$OUT (default results/gpu): candidate scoring (pyiqa vs fast MUSIQ, fp32/bf16, torch.compile), the stage-one
and FT steps against BasicSR's step (fp32, bf16 + channels_last, compile), amo_cached and Ori steps, and the
bf16 precision evidence. Random weights; nothing is downloaded (HF_HUB_OFFLINE=1, NRIQA_OFFLINE=1).

Environment:
  OUT      output folder (default results/gpu)
  PYTHON   interpreter (default ./.venv/bin/python)
  DRY_RUN  1: tiny sizes on the CPU, no torch.compile; checks the script end to end without a GPU

Refuses to start without a CUDA device unless DRY_RUN is set.
EOF
}
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    '') ;;
    *) echo "gpu_bench.sh: unknown argument '$1' (settings are environment variables; see --help)" >&2; exit 2 ;;
esac
OUT=${OUT:-results/gpu}
PY=${PYTHON:-.venv/bin/python}
if [ -z "${DRY_RUN:-}" ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_bench.sh: no CUDA device visible to $PY (torch.cuda.is_available() is False): the full benchmark" \
         "would run paper-size steps on the CPU for hours. Run it on a GPU machine, or DRY_RUN=1 to check the" \
         "script on the CPU." >&2
    exit 2
fi
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 NRIQA_OFFLINE=1
STEP=(--iters 20 --warmup 5) SCORE=(--batch-size 60 --size 256 --iters 20 --warmup 3 --compile)
PRECISION=(--iters 200 --batch-size 12 --gt-size 128) COMPILE=1
if [ -n "${DRY_RUN:-}" ]; then
    STEP=(--device cpu --batch-size 1 --gt-size 64 --iters 1 --warmup 1)
    SCORE=(--device cpu --batch-size 1 --size 64 --iters 1 --warmup 0)
    PRECISION=(--device cpu --iters 2 --batch-size 2 --gt-size 64 --groups 4) COMPILE=
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>/dev/null || true
# the package's modules (nriqa-bench-* console scripts), so an installed package runs the same code
step() { "$PY" -m nriqa_basicsr.bench.step "${STEP[@]}" "$@"; }
# 1. candidate scoring: pyiqa vs fast path, fp32/bf16 (+ torch.compile); B*K = 60 crops of 256^2
"$PY" -m nriqa_basicsr.bench.scoring "${SCORE[@]}" -o "$OUT/scoring.json"
# 2. stage one (AMO, online MUSIQ) vs BasicSR's SRGAN step, fp32, then bf16 + channels_last
step -opt options/train/train_RRDB_AMO.yml -o "$OUT/step_amo_fp32.json"
step -opt options/train/train_RRDB_AMO.yml --amp bf16 --channels-last -o "$OUT/step_amo_bf16_cl.json"
# 3. the 0.75x target: full AMO + FT step (bf16 + channels_last) vs BasicSR's plain fp32 step of stage one
step -opt options/train/train_RRDB_AMO_FT.yml --baseline-opt options/train/train_RRDB_AMO.yml \
    --amp bf16 --channels-last -o "$OUT/step_amo_ft_bf16_cl.json"
if [ -n "$COMPILE" ]; then
    step -opt options/train/train_RRDB_AMO_FT.yml --baseline-opt options/train/train_RRDB_AMO.yml \
        --amp bf16 --channels-last --compile -o "$OUT/step_amo_ft_bf16_cl_compile.json"
fi
# 4. amo_cached: selection from precomputed grid scores, no in-loop scoring; Ori for reference
step -opt options/train/train_RRDB_AMO.yml --policy amo_cached -o "$OUT/step_amo_cached_fp32.json"
step -opt options/train/train_RRDB_Ori.yml -o "$OUT/step_ori_fp32.json"
# 5. evidence for bf16 + channels_last defaults: short runs, fp32 seeds 0/1 (noise) vs bf16 + channels_last
"$PY" -m nriqa_basicsr.bench.precision -opt options/train/train_RRDB_UPos.yml "${PRECISION[@]}" \
    -o "$OUT/precision.json"
echo "results in $OUT"
