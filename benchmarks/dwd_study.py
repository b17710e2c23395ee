"""Does dynamic weight decay (DWD) make CSNet prunable? The SOD100K claim at CPU scale.

Trains the full (unpruned) csnet-l-x1 from scratch twice on DUTS-TR-2k, once with DWD
and once with plain weight decay only (everything else equal: initial weights, data
order, augmentation, optimizer, schedule), prunes both with the library's pruning rule
(``sod100k.train.prune.prune_model``) to the same parameter budgets, fine-tunes every
pruned net equally, scores every stage on all of ECSSD, and writes:

* ``results.json`` / ``results.md``: params, FLOPs (at 224 x 224), ECSSD MAE / max F /
  S-measure for trained, pruned and fine-tuned nets of both runs;
* ``gamma_hist.png``: histograms of |gamma| (the BN weights under DWD) per epoch for
  both runs; ``gamma_share.png`` + ``gamma_share.json``: share of |gamma| < 1e-20 and
  < 1e-3 after every epoch.

Resumable: every stage is recorded in ``state.json`` when done, and training writes a
checkpoint (weights, optimizer, epoch) after every epoch; re-running the same command
continues with the first unfinished epoch or stage. Deleting ``OUT`` starts over.

Departures from the 300-epoch recipe, and why (see docs/guide/dwd-study.md):
``--size 112`` (4x fewer pixels per step), ``--epochs 10`` of 2,000 images, and the BN
gammas under DWD (in both runs) get their own learning rate ``--gamma-lr 3e-3``. Adam
moves every parameter by about its learning rate per step whatever the size of its
gradient, so at lr 1e-4 every gamma falls from 1 by at most 0.08 in 830 steps, in
lockstep; at 3e-3 a gamma can reach zero in ~330 steps, which leaves the rest of the
run for DWD to push unneeded channels down while BCE holds useful ones up.

Usage:
    python benchmarks/dwd_study.py [--out runs/dwd-study] [--smoke] [options]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, Subset

from sod100k.checkpoints.loading import load_model, save_model
from sod100k.data.dataset import SaliencyDataset, collate_skipping_bad, pair_by_stem
from sod100k.data.images import load_gray, load_rgb
from sod100k.eval.metrics import score_image, summarize
from sod100k.infer.preprocess import postprocess, preprocess_batch
from sod100k.models import create_model
from sod100k.models.flops import count_flops, count_params
from sod100k.train.dwd import DynamicWeightDecay
from sod100k.train.prune import PruneError, prune_model
from sod100k.train.step import StepLoss
from sod100k.utils.files import atomic_save, atomic_write_text

log = logging.getLogger("dwd_study")
RUNS = ("dwd", "plain")
THRESHOLDS = {"below_1e-20": 1e-20, "below_1e-3": 1e-3}  # key -> |gamma| threshold
DEFAULT_DATA = "../shared/data/DUTS-TR-2k"
DEFAULT_ECSSD = "../shared/data/ECSSD"


@dataclass(frozen=True)
class Settings:
    """Everything the study's numbers depend on (stored in ``state.json``)."""

    model: str = "csnet-l-x1"
    size: int = 112
    batch: int = 24
    epochs: int = 10
    finetune_epochs: int = 2
    lr: float = 1e-4
    gamma_lr: float = 3e-3
    finetune_lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 5e-3
    dwd_coefficient: float = 3.0
    budgets: tuple[float, ...] = (0.5, 0.8)
    train_limit: int = 0
    eval_limit: int = 0
    seed: int = 0


SMOKE = {"size": 32, "batch": 8, "epochs": 2, "finetune_epochs": 1, "train_limit": 16,
         "eval_limit": 4}  # fmt: skip


# ----------------------------------------------------------------------------- state
class State:
    """``state.json``: the settings and the result of every finished stage."""

    def __init__(self, out: Path, settings: Settings) -> None:
        self.path = out / "state.json"
        wanted = _jsonable(settings.__dict__)
        if self.path.exists():
            self.data = json.loads(self.path.read_text())
            if self.data["settings"] != wanted:
                raise SystemExit(
                    f"{self.path}: made with other settings {self.data['settings']}; "
                    "use another --out or delete it to start over"
                )
        else:
            self.data = {"settings": wanted, "stages": {}}
            self.save()

    def done(self, stage: str) -> bool:
        return stage in self.data["stages"]

    def get(self, stage: str) -> Any:
        return self.data["stages"][stage]

    def finish(self, stage: str, result: Any) -> None:
        self.data["stages"][stage] = _jsonable(result)
        self.save()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else v))


# ----------------------------------------------------------------------------- training
def penalised_gammas(model: nn.Module) -> list[nn.Parameter]:
    """The BN gammas that DWD acts on (every backbone unit), in forward order."""
    return [norm.weight for u in model.branch_units() for norm in u.norms.values()]


def gamma_values(model: nn.Module) -> np.ndarray:
    return torch.cat([g.detach().abs().flatten() for g in penalised_gammas(model)]).numpy()


def make_optimizer(model: nn.Module, s: Settings, dwd: bool, lr: float, gamma_lr: float):
    """Adam with the gammas in their own group: wd 0 under DWD, else plain weight decay."""
    ids = {id(p) for p in penalised_gammas(model)}
    rest = [p for p in model.parameters() if id(p) not in ids]
    gammas = [p for p in model.parameters() if id(p) in ids]
    return torch.optim.Adam(
        [
            {"params": rest, "lr": lr, "weight_decay": s.weight_decay},
            {"params": gammas, "lr": gamma_lr, "weight_decay": 0.0 if dwd else s.weight_decay},
        ],
        betas=s.betas,
    )


def train_set(data: str, s: Settings):
    ds = SaliencyDataset(data, s.size, augment="csnet", skip_bad=True)
    return Subset(ds, range(min(s.train_limit, len(ds)))) if s.train_limit else ds


def train(
    name: str,
    model: nn.Module,
    run_dir: Path,
    data,
    s: Settings,
    *,
    dwd: bool,
    epochs: int,
    lr: float,
    gamma_lr: float,
    on_epoch=None,
) -> dict:
    """Train ``epochs`` epochs, resuming from ``run_dir/last.pt``; returns per-epoch logs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    decay = DynamicWeightDecay(model, s.dwd_coefficient) if dwd else None
    opt = make_optimizer(model, s, dwd, lr, gamma_lr)
    step_loss = StepLoss(model, decay, channels_last=True)
    history: list[dict] = []
    start = 0
    last = run_dir / "last.pt"
    if last.exists():
        payload = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        start, history = payload["epoch"] + 1, payload["history"]
        log.info("%s: resuming after epoch %d", name, start)
    for epoch in range(start, epochs):
        seed = s.seed * 100_003 + epoch
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        loader = DataLoader(
            data,
            batch_size=s.batch,
            sampler=RandomSampler(data, generator=torch.Generator().manual_seed(seed)),
            num_workers=0,
            drop_last=len(data) >= s.batch,
            collate_fn=collate_skipping_bad,
        )
        model.train()
        sums, steps, t0, step_times = {"loss": 0.0, "bce": 0.0, "dwd": 0.0}, 0, time.time(), []
        for batch in loader:
            if batch is None:
                continue
            t = time.perf_counter()
            loss, bce, penalty = step_loss(*batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step_times.append(time.perf_counter() - t)
            for key, v in zip(sums, (loss, bce, penalty), strict=True):
                sums[key] += float(v.detach())
            steps += 1
        record = {k: v / max(steps, 1) for k, v in sums.items()}
        record |= {
            "epoch": epoch + 1,
            "steps": steps,
            "seconds": time.time() - t0,
            "median_step_s": statistics.median(step_times) if step_times else 0.0,
        }
        if on_epoch:
            record |= on_epoch(epoch + 1, model)
        history.append(record)
        payload = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                   "epoch": epoch, "history": history}  # fmt: skip
        _atomic_torch_save(payload, last)
        log.info("%s epoch %d: %s", name, epoch + 1, record)
    if decay:
        decay.remove()
    return {"history": history}


def _atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_save(path, lambda f: torch.save(obj, f))


def contiguous(model: nn.Module) -> nn.Module:
    return model.to(memory_format=torch.contiguous_format)


# ----------------------------------------------------------------------------- pruning
def prune_to_budget(model: nn.Module, keep_share: float) -> tuple[nn.Module, float, bool]:
    """Prune with the smallest |gamma| threshold whose net has <= ``keep_share`` of the
    parameters; the candidates are the BN gammas' own values (binary search).

    A threshold that would empty a whole unit (``PruneError``) is unusable, and so is
    every higher one. When every threshold that meets the budget is unusable, the budget
    cannot be met with the reference rule: the deepest usable cut is returned instead.

    Returns:
        The pruned net, its threshold and whether it meets the budget.
    """
    target = keep_share * count_params(model)
    values = torch.cat(
        [m.weight.detach().abs().flatten() for m in model.modules()
         if isinstance(m, nn.BatchNorm2d)]
    )  # fmt: skip
    candidates = [*torch.unique(values).tolist(), float("inf")]

    def attempt(index: int) -> tuple[nn.Module, float] | None:
        # threshold ``candidates[index]`` removes every smaller |gamma| and keeps it
        threshold = candidates[index]
        try:
            return prune_model(model, threshold).model, threshold
        except PruneError:
            return None

    lo, hi, best, deepest = 0, len(candidates) - 1, None, None
    while lo <= hi:  # smallest usable threshold that meets the budget
        mid = (lo + hi) // 2
        got = attempt(mid)
        if got is None or count_params(got[0]) <= target:
            best = got or best
            hi = mid - 1
        else:
            lo = mid + 1
    if best is not None:
        return (*best, True)
    lo, hi = 0, len(candidates) - 1
    while lo <= hi:  # largest usable threshold
        mid = (lo + hi) // 2
        got = attempt(mid)
        if got is None:
            hi = mid - 1
        else:
            deepest, lo = got, mid + 1
    if deepest is None:
        raise RuntimeError("every threshold empties a unit; nothing can be pruned")
    return (*deepest, False)


# ----------------------------------------------------------------------------- scoring
def ecssd_pairs(root: str, limit: int) -> list:
    pairs = pair_by_stem(root)
    return pairs[:limit] if limit else pairs


@torch.no_grad()
def score(model: nn.Module, pairs: list, size: int) -> dict:
    """ECSSD with the reference test protocol at ``size``: MAE, max F, S-measure."""
    model = contiguous(model).eval()
    results = []
    for i in range(0, len(pairs), 16):
        chunk = pairs[i : i + 16]
        images = [load_rgb(p) for p, _ in chunk]
        logits = model(torch.from_numpy(preprocess_batch(images, size)))[:, 0].numpy()
        for lg, img, (_, mask_path) in zip(logits, images, chunk, strict=True):
            pred = postprocess(lg, img.shape[0], img.shape[1])
            results.append(score_image(pred, load_gray(mask_path)))
    m = summarize(results).metrics
    return {"images": len(results), "mae": m["MAE"], "max_f": m["maxF"], "s_measure": m["Sm"]}


def describe(model: nn.Module) -> dict:
    return {"params": count_params(model), "flops_224": count_flops(contiguous(model))}


# ----------------------------------------------------------------------------- report
def write_report(out: Path, state: State, s: Settings) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for run in RUNS:
        t = state.get(f"score-{run}")
        rows.append((run, "trained", "-", t))
        for b in s.budgets:
            p = state.get(f"prune-{run}-{b}")
            # budget not reachable: the deepest cut the reference rule allows, marked "*"
            mark = "" if p.get("budget_met", True) else "*"
            rows.append((run, f"pruned -{b:.0%}{mark}", f"{p['threshold']:.3g}", p))
            ft = state.get(f"ft-{run}-{b}")
            rows.append((run, f"pruned -{b:.0%}{mark} + fine-tuned", "", ft))
    lines = [
        "| run | stage | threshold | params | FLOPs (224) | ECSSD MAE | ECSSD max F | S-measure |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run, stage, thr, r in rows:
        lines.append(
            f"| {run} | {stage} | {thr} | {r['params']:,} | {r['flops_224'] / 1e9:.3f} G "
            f"| {r['mae']:.4f} | {r['max_f']:.4f} | {r['s_measure']:.4f} |"
        )
    shares = {run: state.get(f"train-{run}")["gamma_share"] for run in RUNS}
    if any("*" in stage for _, stage, _, _ in rows):
        lines += ["", "\\* budget not reachable with the reference rule without emptying "
                  "a whole unit: the deepest cut it allows."]  # fmt: skip
    lines += [
        "",
        "Share of |gamma| (BN weights under DWD) below a threshold, per epoch:",
        "",
        "| run | epoch | < 1e-20 | < 1e-3 | median |gamma| |",
        "|---|---|---|---|---|",
    ]
    for run in RUNS:
        for rec in shares[run]:
            lines.append(
                f"| {run} | {rec['epoch']} | {rec['below_1e-20']:.1%} | {rec['below_1e-3']:.1%} "
                f"| {rec['median']:.4g} |"
            )
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    atomic_write_text(
        out / "results.json",
        json.dumps({"settings": state.data["settings"], "rows": [
            {"run": run, "stage": stage, "threshold": thr, **r} for run, stage, thr, r in rows
        ], "gamma_share": shares}, indent=1),
    )  # fmt: skip
    atomic_write_text(out / "gamma_share.json", json.dumps(shares, indent=1))

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for run, style in zip(RUNS, ("-", "--"), strict=True):
        epochs = [r["epoch"] for r in shares[run]]
        for k, (key, thr) in enumerate(THRESHOLDS.items()):
            ax[k].plot(epochs, [r[key] for r in shares[run]], style, marker="o", label=run)
            ax[k].set(title=f"share of |gamma| < {thr:g}", xlabel="epoch", ylim=(-0.02, 1.02))
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(out / "gamma_share.png", dpi=110)
    plt.close(fig)

    hists = {run: np.load(out / f"train-{run}" / "gammas.npz") for run in RUNS}
    n = max(len(h.files) for h in hists.values())
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.4), squeeze=False, sharex=True)
    bins = np.logspace(-25, 1, 53)
    for r, run in enumerate(RUNS):
        for c, key in enumerate(sorted(hists[run].files, key=lambda k: int(k.split("_")[1]))):
            values = np.clip(hists[run][key], 1e-25, None)
            axes[r][c].hist(values, bins=bins, color="C0" if r == 0 else "C1")
            axes[r][c].set_xscale("log")
            axes[r][c].set_title(f"{run} {key.replace('_', ' ')}", fontsize=8)
    fig.supxlabel("|gamma| (values < 1e-25 in the first bin)")
    fig.tight_layout()
    fig.savefig(out / "gamma_hist.png", dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- main
def run_study(out: Path, s: Settings, data: str, ecssd: str) -> State:
    """Run (or continue) every stage of the study in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    state = State(out, s)
    pairs = ecssd_pairs(ecssd, s.eval_limit)
    data_set = train_set(data, s)
    torch.manual_seed(s.seed)
    init = create_model(s.model)  # one initial net for both runs
    for run in RUNS:
        run_dir = out / f"train-{run}"
        if not state.done(f"train-{run}"):
            model = copy.deepcopy(init)
            gammas: dict[str, np.ndarray] = {}
            npz = run_dir / "gammas.npz"
            if npz.exists():
                gammas = dict(np.load(npz))

            def on_epoch(epoch: int, m: nn.Module, gammas=gammas, npz=npz) -> dict:
                g = gamma_values(m)
                gammas[f"epoch_{epoch}"] = g
                tmp = npz.with_name("gammas.tmp.npz")
                np.savez_compressed(tmp, **gammas)
                os.replace(tmp, npz)
                return {k: float((g < t).mean()) for k, t in THRESHOLDS.items()} | {
                    "median": float(np.median(g))
                }

            g0 = gamma_values(init)
            gammas.setdefault("epoch_0", g0)
            result = train(run, model, run_dir, data_set, s, dwd=run == "dwd", epochs=s.epochs,
                           lr=s.lr, gamma_lr=s.gamma_lr, on_epoch=on_epoch)  # fmt: skip
            start = {"epoch": 0} | {k: float((g0 < t).mean()) for k, t in THRESHOLDS.items()}
            start["median"] = float(np.median(g0))
            result["gamma_share"] = [start] + [
                {k: h[k] for k in ("epoch", "below_1e-20", "below_1e-3", "median")}
                for h in result["history"]
            ]
            save_model(run_dir / "trained.pt", contiguous(model), metadata={"study": run})
            state.finish(f"train-{run}", result)
        trained = load_model(weights=str(run_dir / "trained.pt"))
        if not state.done(f"score-{run}"):
            state.finish(f"score-{run}", describe(trained) | score(trained, pairs, s.size))
        for b in s.budgets:
            key = f"{run}-{b}"
            path = out / f"pruned-{key}.pt"
            if not state.done(f"prune-{key}"):
                pruned, threshold, met = prune_to_budget(trained, 1.0 - b)
                if not met:
                    log.info("%s: -%d %% unreachable without emptying a unit", key, 100 * b)
                save_model(path, pruned, metadata={"threshold": threshold})
                result = {"threshold": threshold, "budget_met": met}
                result |= describe(pruned) | score(pruned, pairs, s.size)
                state.finish(f"prune-{key}", result)
            if not state.done(f"ft-{key}"):
                model = load_model(weights=str(path))
                ft = train(f"{key} fine-tune", model, out / f"ft-{key}", data_set, s, dwd=False,
                           epochs=s.finetune_epochs, lr=s.finetune_lr,
                           gamma_lr=s.finetune_lr)  # fmt: skip
                model = contiguous(model)
                save_model(out / f"ft-{key}" / "final.pt", model, metadata={"study": key})
                state.finish(f"ft-{key}", ft | describe(model) | score(model, pairs, s.size))
    write_report(out, state, s)
    return state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/dwd-study"))
    p.add_argument("--data", default=DEFAULT_DATA, help="training pairs (images/ + masks/)")
    p.add_argument("--ecssd", default=DEFAULT_ECSSD, help="ECSSD (images/ + masks/)")
    p.add_argument("--smoke", action="store_true", help="a tiny configuration, minutes")
    p.add_argument("--threads", type=int, default=2)
    defaults = Settings()
    for name, value in defaults.__dict__.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, tuple):
            p.add_argument(flag, type=type(value[0]), nargs="+")
        else:
            p.add_argument(flag, type=type(value))
    args = p.parse_args(argv)
    values = dict(defaults.__dict__) | (SMOKE if args.smoke else {})
    for name in defaults.__dict__:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    s = Settings(**values)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.time()
    state = run_study(args.out, s, args.data, args.ecssd)
    print((args.out / "results.md").read_text())
    print(f"done in {time.time() - t0:.0f} s this invocation; outputs in {args.out}")
    return 0 if state else 1


if __name__ == "__main__":
    sys.exit(main())
