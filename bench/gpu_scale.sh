#!/usr/bin/env bash
# Issue 9's figures on a lent multi-GPU box with no internet, in one or two device calls (10 min
# each at most; on 4 H200s about 3 min of CUDA build on 64 cores, then the benches). From the repo root, with
# .whl/ carried: the Python 3.12 wheels qtui needs beyond the box's own packages (ray among
# them) and .whl/llama-src.tar.gz, llama.cpp's source trimmed of models/, docs/ and the
# non-CUDA backends (gpu_verify.sh says more).
#   WHAT=scale   1, 2, 4 GPUs on one queue (REPEAT=3: jobs of about 8 s on the test model)
#   WHAT=ray     local against Ray on every GPU, whole runs with their base job (--with-base)
#   WHAT=all     both (the default); each bench's log goes to $OUT
#   SHAPE=DIM:LAYERS:FF  the random test model (default 2048:12:5632, a 2.5 GB F32 base;
#                4096:16:11008 is 3.3 B parameters, 13 GB, and passes about twice as long)
#   COUNTS=1,4   the GPU counts of WHAT=scale (default 1,2,4, or 1,2 on a 2-GPU box)
# Timing on 4 H200s: the build 160-185 s; WHAT=ray 210 s; WHAT=scale with SHAPE=4096:16:11008
# COUNTS=1,4 REPEAT=2 490-535 s in all (the model written and quantized, the base, then
# 177-184 s + 50 s): one 10-minute call with the build. A second call on the warm machine finds
# the build and the models in /tmp and starts at once.
set -uo pipefail
OUT="${OUT:-$PWD/gpu-scale}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 QTUI_CACHE_DIR="${QTUI_CACHE_DIR:-/tmp/qtui-cache}" RAY_USAGE_STATS_ENABLED=0
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PATH="/tmp/site/bin:$PATH"
# setup-llama adopts an unpacked source tree in its cache layout (the sdist is not reachable here)
SRC="$QTUI_CACHE_DIR/llama/0.3.36-cuda90/src"
[ -d "$SRC/ggml" ] || { mkdir -p "$SRC" && tar xzf .whl/llama-src.tar.gz -C "$SRC"; } || exit 1
t0=$(date +%s)
python3 -m qtui.cli setup-llama --cuda --cuda-arch 90 -j "$(nproc)" > "$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log"; exit 1; }
echo "setup-llama: $(( $(date +%s) - t0 )) s"
BIN="$QTUI_CACHE_DIR/llama/0.3.36-cuda90/build/bin"
GPUS=$(nvidia-smi -L | wc -l)
IFS=: read -r DIM LAYERS FF <<< "${SHAPE:-2048:12:5632}"
MODEL=(--dim "$DIM" --layers "$LAYERS" --ff "$FF" --llama-bin "$BIN")
rc=0
if [ "${WHAT:-all}" != ray ]; then
  counts=1,2; [ "$GPUS" -ge 4 ] && counts=1,2,4; counts="${COUNTS:-$counts}"
  python3 bench/bench_scale.py --gpus "$counts" --jobs "${JOBS:-16}" --corpus-repeat "${REPEAT:-3}" "${MODEL[@]}" \
    -- -ngl 99 2>&1 | tee "$OUT/scale.log" | grep -v quantizing || rc=1
fi
if [ "${WHAT:-all}" != scale ]; then
  python3 bench/bench_scale.py --gpus "$GPUS" --no-baseline --with-base --jobs "${JOBS:-16}" --corpus-repeat "${REPEAT:-3}" \
    --ray start --ray-runs 2 "${MODEL[@]}" -- -ngl 99 2>&1 | tee "$OUT/ray.log" | grep -v quantizing || rc=1
fi
exit $rc
