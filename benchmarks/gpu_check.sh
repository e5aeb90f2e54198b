#!/usr/bin/env bash
# One prepared GPU check (issue 19): finishes in under 8 minutes on one GPU.
#
#   1. the GPU and the software (nvidia-smi, torch, keras);
#   2. kvision bench on CUDA, float32: kvision vs plain and tuned PyTorch, training and
#      inference, every case (4x the CPU steps), 5 alternating repeats of >= 0.3 s;
#   3. the same with --mixed-precision (Keras mixed_float16; fp16 autocast + GradScaler);
#   4. the main job (recipes/naive_vs_expert.toml) on CUDA with --profile, its peak GPU
#      memory (torch.cuda.max_memory_allocated in the run's process, and nvidia-smi's
#      memory.used sampled every 200 ms), wall time and peak RSS.
#
# Every step has its own time limit, so a slow step cannot take the others' time; results
# go to OUT (default gpu-check/): *.json, *.md (stamped tables), *.log, summary.md.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --dry-run       # anywhere: print the plan and run the CPU-safe
#                                                # parts (imports, bench --list, recipe check,
#                                                # one tiny CPU bench case)
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$arg' (use --dry-run or --help)" >&2; exit 2 ;;
  esac
done

OUT=${OUT:-gpu-check}
PYTHON=${PYTHON:-python}
BENCH_LIMIT=${BENCH_LIMIT:-150}   # seconds per bench run (two runs)
MAIN_LIMIT=${MAIN_LIMIT:-120}     # seconds for the main job
mkdir -p "$OUT"
started=$(date +%s)

step() { echo; echo "== $* ($(( $(date +%s) - started )) s in)"; }

# Run a command under a time limit, its output both on screen and in OUT/NAME.log; a
# failure or timeout is reported and the script goes on to the next step.
run() {
  local name=$1 limit=$2; shift 2
  echo "+ $*"
  if [ "$DRY_RUN" = 1 ]; then return 0; fi
  set +e
  timeout --signal=INT --kill-after=15 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" = 0 ] || echo "!! $name exited with $rc (124: over its ${limit}s limit)" | tee -a "$OUT/$name.log"
  return 0
}

step "1. machine"
if [ "$DRY_RUN" = 1 ]; then
  echo "+ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv"
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
fi
"$PYTHON" - <<'EOF'
import kvision  # first: it selects the torch backend before keras is imported
import keras, torch
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), keras {keras.__version__}, "
      f"kvision {kvision.__version__}; cuda available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0))
EOF

step "2. kvision bench, float32"
run bench-fp32 "$BENCH_LIMIT" "$PYTHON" -m kvision bench --repeats 5 --min-seconds 0.3 \
  --markdown "$OUT/bench-fp32.md"

step "3. kvision bench, mixed precision"
run bench-amp "$BENCH_LIMIT" "$PYTHON" -m kvision bench --repeats 5 --min-seconds 0.3 \
  --mixed-precision --markdown "$OUT/bench-amp.md"

step "4. the main job on CUDA"
SMI_PID=""
if [ "$DRY_RUN" = 0 ]; then
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/smi-memory.csv" &
  SMI_PID=$!
fi
# The run in this process, so torch.cuda.max_memory_allocated sees its allocations.
run main-job "$MAIN_LIMIT" "$PYTHON" - "$OUT" <<'EOF'
import json, resource, sys, time
import kvision  # noqa: F401  (torch backend)
import torch
from kvision.cli import main
out = sys.argv[1]
started = time.monotonic()
code = main(["run", "recipes/naive_vs_expert.toml", "--runs-dir", f"{out}/runs", "--profile"])
peak = {"exit_code": code, "seconds": round(time.monotonic() - started, 1),
        "cuda_max_memory_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)
        if torch.cuda.is_available() else None,
        "cuda_max_memory_reserved_mib": round(torch.cuda.max_memory_reserved() / 2**20, 1)
        if torch.cuda.is_available() else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
print(json.dumps(peak))
with open(f"{out}/main-job.json", "w") as fh:
    json.dump(peak, fh)
EOF
if [ -n "$SMI_PID" ]; then
  kill "$SMI_PID" 2>/dev/null || true
  wait "$SMI_PID" 2>/dev/null || true
  echo "nvidia-smi peak memory.used (MiB, whole GPU): $(sort -n "$OUT/smi-memory.csv" | tail -1)" \
    | tee "$OUT/smi-peak.txt"
fi

if [ "$DRY_RUN" = 1 ]; then
  step "dry run: the CPU-safe parts"
  "$PYTHON" -m kvision bench --list
  "$PYTHON" -m kvision validate recipes/naive_vs_expert.toml
  "$PYTHON" -m kvision bench --case lenet-28-gray --mode infer --steps 1 --repeats 1 \
    --min-seconds 0 --markdown "$OUT/dry-run-bench.md"
fi

step "summary"
{
  echo "# GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'), $(( $(date +%s) - started )) s)"
  for f in bench-fp32.md bench-amp.md dry-run-bench.md; do
    [ -f "$OUT/$f" ] && { echo; cat "$OUT/$f"; }
  done
  [ -f "$OUT/main-job.json" ] && { echo; echo '## main job'; echo; cat "$OUT/main-job.json"; echo; }
  [ -f "$OUT/smi-peak.txt" ] && { echo; cat "$OUT/smi-peak.txt"; }
  true
} > "$OUT/summary.md"
echo "results in $OUT/ (summary.md); took $(( $(date +%s) - started )) s"
