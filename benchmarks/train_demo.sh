#!/usr/bin/env bash
# CPU demo of the SOD100K recipe: train csnet-l-x1 from scratch with dynamic weight decay
# on the first N pairs of DUTS-TR-2k, validate on the first V ECSSD images, prune, fine-tune.
# Usage: benchmarks/train_demo.sh [N=160] [EPOCHS=2] [V=100] [WORK=/tmp/sod100k-demo]
set -euo pipefail
N=${1:-160}; EPOCHS=${2:-2}; V=${3:-100}; WORK=${4:-/tmp/sod100k-demo}
export PYTHONPATH=src
rm -rf "$WORK"; mkdir -p "$WORK/subset/images" "$WORK/subset/masks"
for img in $(ls ../shared/data/DUTS-TR-2k/images | head -n "$N"); do
  ln -s "$(realpath ../shared/data/DUTS-TR-2k/images/$img)" "$WORK/subset/images/$img"
  ln -s "$(realpath ../shared/data/DUTS-TR-2k/masks/${img%.*}.png)" "$WORK/subset/masks/${img%.*}.png"
done
python -m sod100k train --model csnet-l-x1 --data "$WORK/subset" --val ../shared/data/ECSSD \
  --val-limit "$V" --out "$WORK/train" --epochs "$EPOCHS" --workers 1
python -m sod100k prune "$WORK/train/last.pt" --threshold 1e-20 --out "$WORK/pruned.pt"
python -m sod100k finetune "$WORK/pruned.pt" --data "$WORK/subset" --val ../shared/data/ECSSD \
  --val-limit "$V" --out "$WORK/finetune" --epochs 1 --workers 1
python benchmarks/plot_loss.py docs/train_demo_loss.png "$WORK/train" "$WORK/finetune"
cat "$WORK/train/metrics.csv" "$WORK/finetune/metrics.csv"
