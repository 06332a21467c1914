#!/usr/bin/env bash
# A KLD showdown on real NVIDIA GPUs with a CUDA build made by `qtui setup-llama`, while the
# app's GPU panel is captured. Run from the repo root on a GPU box with no internet:
#   .whl/ holds the Python 3.12 wheels qtui needs beyond the box's own packages and
#   .whl/llama-src.tar.gz a llama.cpp source tree trimmed of models/, docs/ and the non-CUDA
#   GPU backends (about 9 MB packed).
# Every GPU of the box takes jobs; GPUS_PER_RUN=2 (or auto) gives each job a group of GPUs.
# gpu_timeline.py checks, from nvidia-smi's view of the processes, that each job ran on exactly
# its group's GPUs and that jobs on disjoint groups overlapped (4 GPUs, GPUS_PER_RUN=2: two
# jobs at once, each on its own pair). SLOTS only matters where no GPU is seen.
# Writes what it saw under $OUT (or ./gpu-verify): about 12 files. Where only a few files come
# back (the lent device: 8), set OUT to a scratch folder and tar it into the real one.
# Budget ~6 min of CUDA build on 16 cores (-j), ~2 min of models and runs.
set -euo pipefail
OUT="${OUT:-$PWD/gpu-verify}"; mkdir -p "$OUT"
SLOTS="${SLOTS:-1}"; JOBS="${JOBS:-16}"; GPR="${GPUS_PER_RUN:-1}"; [ "$GPR" = auto ] && GPR='"auto"'
export PYTHONUNBUFFERED=1 QTUI_CACHE_DIR=/tmp/qtui-cache QTUI_DATA_DIR=/tmp/qtui-data QTUI_CONFIG_DIR=/tmp/qtui-config
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD"
qtui() { python3 -m qtui.cli "$@"; }
nvidia-smi -L | tee "$OUT/nvidia-smi.txt"
nvidia-smi --query-gpu=index,pci.bus_id,name --format=csv,noheader > "$OUT/smi-gpus.txt"
mkdir -p "$QTUI_CONFIG_DIR"; printf 'slots = %s\ngpus_per_run = %s\n' "$SLOTS" "$GPR" > "$QTUI_CONFIG_DIR/config.toml"
# setup-llama adopts an unpacked source tree in its cache layout (the sdist is not reachable here)
SRC="$QTUI_CACHE_DIR/llama/0.3.36-cuda90/src"; mkdir -p "$SRC"; tar xzf .whl/llama-src.tar.gz -C "$SRC"
t0=$(date +%s); qtui setup-llama --cuda --cuda-arch 90 -j "$JOBS" 2>&1 | tail -4 | tee "$OUT/setup.txt"
echo "setup-llama: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/setup.txt"
M=/tmp/models; mkdir -p $M
python3 - <<'PY' | tee "$OUT/models.txt"
from pathlib import Path
from qtui.core.llama import assets as factory
from qtui.core.llama.tools import find_tools
tools = find_tools()
corpus = factory.stdlib_corpus(Path("/tmp/models/corpus.txt"))
base = factory.tiny_model(Path("/tmp/models"), corpus=corpus, dim=2048, n_layer=12, n_ff=5632)
for q in ("Q8_0", "Q4_K_M", "Q4_0", "Q2_K"):
    factory.quantize(tools, base, Path("/tmp/models") / base.name.replace("-F32", f"-{q}"), q)
print(tools.bin_dir, base, base.stat().st_size)
PY
BASE=$(ls $M/*-F32.gguf)
# nvidia-smi's own view of which process is on which GPU, twice a second
( while :; do date +%s.%N; nvidia-smi --query-compute-apps=pid,gpu_bus_id,used_memory --format=csv,noheader; sleep 0.5; done ) > "$OUT/smi-apps.txt" 2>&1 &
SMI=$!
qtui run --detach --base "$BASE" --corpus $M/corpus.txt -c 512 $(ls $M/*-Q*.gguf) -- -ngl 99 | tee "$OUT/run.txt"
python3 bench/gpu_capture.py $M "$QTUI_DATA_DIR" "$OUT" "${CAPTURE_S:-150}" "$SLOTS" | tail -30
kill $SMI || true
qtui jobs | tee -a "$OUT/run.txt"
COLUMNS=200 qtui results | tee "$OUT/results.txt"
qtui export --format json "$OUT/results.json"
python3 bench/gpu_timeline.py "$QTUI_DATA_DIR" "$OUT/smi-apps.txt" "$OUT/smi-gpus.txt" | tee "$OUT/timeline.txt"
# qtui's patched build dumps per-token KLD: the statistics from it must equal the printed ones
python3 bench/gpu_tokens_check.py "$QTUI_DATA_DIR" | tee "$OUT/tokens.txt"
