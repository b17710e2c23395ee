#!/usr/bin/env bash
# CPU demo of the CSF + Res2Net-50 recipe: a short run on the first N pairs of
# DUTS-TR-2k (batch 1, 10-step accumulation, lr 5e-5, summed BCE, frozen BN; at SIZE x SIZE
# instead of the reference's native image size, to fit a CPU), validating on the first V
# ECSSD images; plots the per-step loss. No ImageNet weights here: the backbone starts
# from scratch unless BACKBONE names a Res2Net-50 v1b 26w4s file.
# Usage: benchmarks/train_csf_demo.sh [N=300] [EPOCHS=1] [SIZE=224] [V=100]
#                                     [WORK=/tmp/sod100k-csf-demo]
set -euo pipefail
N=${1:-300}; EPOCHS=${2:-1}; SIZE=${3:-224}; V=${4:-100}; WORK=${5:-/tmp/sod100k-csf-demo}
export PYTHONPATH=src
rm -rf "$WORK"; mkdir -p "$WORK/subset/images" "$WORK/subset/masks"
for img in $(ls ../shared/data/DUTS-TR-2k/images | head -n "$N"); do
  ln -s "$(realpath ../shared/data/DUTS-TR-2k/images/$img)" "$WORK/subset/images/$img"
  ln -s "$(realpath ../shared/data/DUTS-TR-2k/masks/${img%.*}.png)" "$WORK/subset/masks/${img%.*}.png"
done
python -m sod100k train --model csf-res2net50 --data "$WORK/subset" --val ../shared/data/ECSSD \
  --val-limit "$V" --out "$WORK/train" --epochs "$EPOCHS" --size "$SIZE" --workers 1 \
  $(if [ -n "${BACKBONE:-}" ]; then echo --backbone-weights "$BACKBONE"; else echo --from-scratch; fi)
python benchmarks/plot_loss.py docs/images/train-csf-demo-loss.png "$WORK/train"
cat "$WORK/train/metrics.csv"
