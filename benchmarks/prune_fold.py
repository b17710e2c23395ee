"""How much pruning moves the logits of the released CSNets, per fold mode.

The released checkpoints were pruned by the reference at |gamma| < 1e-20, so at that
threshold nothing more is removed. This script prunes them at higher thresholds and
compares, in eval mode on real images (the reference test protocol: 224x224, ImageNet
normalisation), the logits of

* ``original``: the released net itself;
* ``zeroed``: the released net with the gammas below the threshold set to exactly 0 (the
  function that pruning is meant to keep: a removed channel then really emits PReLU(beta));

with the pruned net for every fold mode (``all``, ``exact``, ``none``). ``vs zeroed``
isolates what folding can and cannot carry over (the border of zero-padded 3x3 convs);
``vs original`` adds the effect of treating small gammas as 0. MAE is against the
ground truth (the saliency map at the image's own size, as ``sod100k evaluate``).

Usage:
    python benchmarks/prune_fold.py --data ../shared/data/ECSSD [--limit N]
        [--thresholds 1e-8 1e-3] [--weights DIR ...]
"""

from __future__ import annotations

import argparse
import copy
import datetime

import numpy as np
import torch

from harness import cpu_model
from sod100k.checkpoints.loading import load_model
from sod100k.data.dataset import pair_by_stem
from sod100k.data.images import load_mask, load_rgb
from sod100k.infer.preprocess import postprocess, preprocess
from sod100k.models.flops import count_params
from sod100k.train.prune import FOLD_MODES, prune_model


def zeroed(model: torch.nn.Module, threshold: float) -> torch.nn.Module:
    """``model`` with the backbone expand / head gammas below ``threshold`` set to 0 and
    the depthwise gammas of those channels too (what pruning removes)."""
    net = copy.deepcopy(model)
    with torch.no_grad():
        for block in net.blocks():
            for key, norm in block.expand.norms.items():
                dead = norm.weight.abs() < threshold
                for unit in block.units:
                    unit.norms[key].weight[dead] = 0.0
        head = net.head
        norms = [*head.fuse.norms.values(), *head.merge.norms.values()]
        norms += [ms.norm for ms in head.multiscale.values()]
        for norm in norms:
            norm.weight[norm.weight.abs() < threshold] = 0.0
    return net


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="images/ + masks/ folder (e.g. ECSSD)")
    p.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    p.add_argument("--thresholds", type=float, nargs="+", default=[1e-8, 1e-3])
    p.add_argument(
        "--weights",
        nargs="+",
        default=["../shared/weights/csnet-L-x1", "../shared/weights/csnet-L-x2"],
    )
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pairs = pair_by_stem(args.data)
    if args.limit:
        pairs = pairs[: args.limit]
    images = [(load_rgb(i), load_mask(m)) for i, m in pairs]
    x_all = [torch.from_numpy(preprocess(rgb))[None] for rgb, _ in images]
    print(f"# {datetime.date.today()} | {cpu_model()} | torch {torch.__version__}")
    print(
        f"# python benchmarks/prune_fold.py --data {args.data} --limit {args.limit} "
        f"--thresholds {' '.join(f'{t:g}' for t in args.thresholds)}"
    )
    print(f"# {len(pairs)} images of {args.data}, eval mode, 224x224")
    print()
    print(
        "| weights | threshold | params | fold | removed: exact / approx / dropped "
        "| max abs dlogit vs zeroed | mean abs dlogit vs zeroed "
        "| max abs dlogit vs original | MAE |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for weights in args.weights:
        model = load_model(weights=weights).eval()
        name = weights.rstrip("/").split("/")[-1]
        base = run(model, x_all)
        print(
            f"| {name} | - | {count_params(model):,} | - | - | - | - | - "
            f"| {mae(base, images):.4f} |"
        )
        for threshold in args.thresholds:
            ref = run(zeroed(model, threshold), x_all)
            for fold in FOLD_MODES:
                result = prune_model(model, threshold, fold=fold)
                out = run(result.model.eval(), x_all)
                d_zero = [np.abs(a - b) for a, b in zip(out, ref, strict=True)]
                d_orig = [np.abs(a - b) for a, b in zip(out, base, strict=True)]
                print(
                    f"| {name} | {threshold:g} | {count_params(result.model):,} | {fold} "
                    f"| {result.folded_exact} / {result.folded_approx} / {result.dropped} "
                    f"| {max(d.max() for d in d_zero):.3g} "
                    f"| {np.mean([d.mean() for d in d_zero]):.3g} "
                    f"| {max(d.max() for d in d_orig):.3g} | {mae(out, images):.4f} |",
                    flush=True,
                )


@torch.no_grad()
def run(model: torch.nn.Module, xs: list[torch.Tensor], batch: int = 25) -> list[np.ndarray]:
    """Eval-mode logits per image (batched: eval mode treats every image alone)."""
    out = []
    for i in range(0, len(xs), batch):
        out.extend(y[0].numpy() for y in model(torch.cat(xs[i : i + batch])))
    return out


def mae(logits: list[np.ndarray], images: list[tuple[np.ndarray, np.ndarray]]) -> float:
    errors = []
    for lg, (_, gt) in zip(logits, images, strict=True):
        pred = postprocess(lg, *gt.shape).astype(np.float32) / 255.0
        errors.append(float(np.abs(pred - gt.astype(np.float32)).mean()))
    return float(np.mean(errors))


if __name__ == "__main__":
    main()
