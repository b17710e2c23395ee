"""Compare `sod100k predict` maps with maps made the way the reference code's test.py does.

The reference test script reads each image with scikit-image as float in [0, 1],
resizes it to 224x224 with ``skimage.transform.resize(mode="reflect",
anti_aliasing=False)``, normalises with the ImageNet mean/std in float64, runs the
network, takes the sigmoid, resizes the probability map back to the image size the same
way, and stores ``(map * 255).astype(uint8)``. This script re-implements those steps
(our own code, with our model for the network), then reports, per model:

1. the mean absolute difference in gray levels between those maps and ours;
2. the standard metrics of both sets side by side (maxF / MAE deltas included).

Usage (from the repository root; heavy, so under the shared lock):

    PYTHONPATH=src python -m sod100k predict ../shared/data/ECSSD/images \
        -o /tmp/ours-x1 --model csnet-l-x1 --weights ../shared/weights/csnet-L-x1
    python benchmarks/reference_protocol.py \
        --model csnet-l-x1 --weights ../shared/weights/csnet-L-x1 \
        --images ../shared/data/ECSSD/images --masks ../shared/data/ECSSD/masks \
        --ours /tmp/ours-x1 --reference /tmp/ref-x1 --report /tmp/protocol-x1.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import skimage
import torch
from skimage import io as skio
from skimage.transform import resize
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sod100k import load_model  # noqa: E402  (after making src importable)
from sod100k.data.images import list_images  # noqa: E402
from sod100k.eval import METRICS, dataset_name, evaluate_folders  # noqa: E402
from sod100k.infer.batch import encode_png  # noqa: E402
from sod100k.utils.files import atomic_write_bytes, atomic_write_text  # noqa: E402

log = logging.getLogger("reference_protocol")
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
SIZE = 224


def reference_input(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """One image as test.py prepares it: ``3 x 224 x 224`` float32 and the original size."""
    img = skimage.img_as_float(skio.imread(path))
    if img.ndim == 2:  # the facts: grayscale is replicated to three channels
        img = np.stack([img] * 3, axis=-1)
    img = img[:, :, :3]
    h, w = img.shape[:2]
    img = resize(img, (SIZE, SIZE), mode="reflect", anti_aliasing=False)
    return np.transpose((img - MEAN) / STD, (2, 0, 1)).astype(np.float32), (h, w)


def reference_map(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Logits -> uint8 map at the original size, as test.py does it."""
    prob = torch.sigmoid(torch.from_numpy(logits)).numpy()
    return (resize(prob, size, mode="reflect", anti_aliasing=False) * 255).astype(np.uint8)


def make_reference_maps(model: torch.nn.Module, images: list[Path], out_dir: Path) -> None:
    # One image per forward pass, as the reference does (no batching effects).
    with torch.inference_mode():
        for path in tqdm(images, desc="reference maps", unit="img"):
            x, size = reference_input(path)
            logits = model(torch.from_numpy(x)[None])[0, 0].numpy()
            atomic_write_bytes(
                out_dir / f"{path.stem}.png", encode_png(reference_map(logits, size))
            )


def gray_level_difference(ours: Path, reference: Path, stems: list[str]) -> dict[str, float]:
    """Mean |ours - reference| in gray levels per image, averaged; plus the extremes."""
    means, worst, identical, pixels = [], 0, 0, 0
    for stem in stems:
        a = skio.imread(ours / f"{stem}.png").astype(np.int16)
        b = skio.imread(reference / f"{stem}.png").astype(np.int16)
        if a.shape != b.shape:
            raise ValueError(f"{stem}: our map is {a.shape}, the reference map {b.shape}")
        diff = np.abs(a - b)
        means.append(diff.mean())
        worst = max(worst, int(diff.max()))
        identical += int((diff == 0).sum())
        pixels += diff.size
    return {
        "mean_abs_gray_diff": float(np.mean(means)),
        "max_abs_gray_diff": worst,
        "identical_pixel_share": identical / pixels,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--masks", type=Path, required=True)
    p.add_argument("--ours", type=Path, required=True, help="maps from `sod100k predict`")
    p.add_argument(
        "--reference",
        type=Path,
        required=True,
        help="folder for the reference-protocol maps (reused if complete)",
    )
    p.add_argument("--report", type=Path, required=True, help="JSON report to write")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    images = list_images(args.images, recursive=False)
    stems = [i.stem for i in images]
    started = time.time()
    if not all((args.reference / f"{s}.png").exists() for s in stems):
        make_reference_maps(load_model(args.model, args.weights), images, args.reference)
    dataset = dataset_name(args.masks)
    diff = gray_level_difference(args.ours, args.reference, stems)
    results = {}
    for label, folder in (("reference protocol", args.reference), ("sod100k predict", args.ours)):
        ev = evaluate_folders(folder, args.masks, label, dataset, progress=False)
        if ev.failed or ev.result is None:
            raise SystemExit(f"{folder}: {len(ev.failed)} map(s) could not be scored")
        results[label] = ev.result.metrics
    ref, ours = results["reference protocol"], results["sod100k predict"]
    report = {
        "model": args.model,
        "weights": str(args.weights),
        "dataset": dataset,
        "images": len(stems),
        **diff,
        "metrics": results,
        "delta_ours_minus_reference": {m: ours[m] - ref[m] for m in METRICS},
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "seconds": round(time.time() - started, 1),
    }
    atomic_write_text(args.report, json.dumps(report, indent=1))
    log.info(
        "%s on %s (%d images): mean |ours - reference| = %.4f gray levels "
        "(max %d, %.2f%% of pixels identical)",
        args.model,
        dataset,
        len(stems),
        diff["mean_abs_gray_diff"],
        diff["max_abs_gray_diff"],
        100 * diff["identical_pixel_share"],
    )
    log.info("%-20s %s", "", "  ".join(f"{m:>6}" for m in METRICS))
    for label, metrics in results.items():
        log.info("%-20s %s", label, "  ".join(f"{metrics[m]:.4f}" for m in METRICS))
    log.info("%-20s %s", "delta", "  ".join(f"{ours[m] - ref[m]:+.4f}" for m in METRICS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
