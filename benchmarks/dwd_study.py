"""Does dynamic weight decay (DWD) make CSNet prunable? The SOD100K claim, tested fairly.

The design is issue 21's; docs/guide/dwd-study.md gives the reasons and the verdict
criteria, written before the run. In short, on the full csnet-l-x1 at 112 px, batch 24,
DUTS-TR-2k, the reference augmentation, BN gammas from U(0, 1), one seed:

1. ``warmup``: a shared warm-up, the recipe without DWD (every parameter under plain
   weight decay), ``--warmup-steps`` steps at ``--lr``;
2. ``move`` (``--move``, on by default): a function-preserving move to the released
   nets' operating point (BN input variance ~1.4e-6 at the expand BNs, ~1.4e-4 / 5.6e-4
   at the depthwise ones, median penalised |gamma| ~0.011): backbone conv weights are
   scaled per unit kind, every penalised BN's gamma and beta by a common factor, and
   each BN's gamma is compensated for where eps now dominates its variance, so that the
   eval-mode function is unchanged (exactly, up to rounding); how much it changes the
   logits (eval and train mode) and the ECSSD scores is measured and stored;
3. three arms from that start, the same data order, ``--steps`` at ``--lr`` then
   ``--low-steps`` at ``--low-lr``, every parameter at the recipe's lr, a fresh Adam:
   ``dwd`` (the recipe: DWD 3.0 and the reference weight-decay groups), ``plain`` (no
   DWD, weight decay on every gamma), ``slim`` (L1 on the gammas, no weight decay on
   them, strength matched to DWD's mean gradient on the gammas at the start);
4. every ``--snapshot-every`` steps: the penalised gammas (``gammas.npz``), the share of
   expand gammas below 1e-20 / 1e-6 / 1e-3, the BN-input-variance medians (running
   variances), ECSSD on the curve images; a checkpoint to resume from;
5. each trained arm pruned at 1e-20, at its natural gap and at each ``--budgets`` share of
   parameters, with BN re-estimation only (``--recal-batches`` batches of the training
   data), scored on the first ``--curve-images`` ECSSD images, the gap and ``--key-budget``
   cuts also on all of ECSSD; the ``--key-budget`` nets then get the same short fine-tune
   (``--ft-steps`` at ``--ft-lr``, no sparsity penalty) and are scored on all of ECSSD.

Everything lands in ``OUT/state.json`` (settings and every finished stage) plus the
checkpoints and ``gammas.npz`` files; ``benchmarks/dwd_study_report.py OUT`` turns it into
the table, figures, results.json and the verdict. Resumable: re-run the same command; a
stage is recorded when done, training writes a checkpoint at every snapshot, and the data
order and augmentation of every step are seeded from the step number, so a resumed run
does what an uninterrupted one would. Other settings into the same ``OUT`` are refused.

Parallel arms: ``--arm ARM`` (repeatable) runs only those arms. Processes given different
arms may share one ``OUT``: the first to need the warm-up runs it while the others wait,
every job runs under its own lock, ``state.json`` is merged rather than overwritten, and
the last process to finish marks the study finished. Training this small net gains little
from a second thread (on a 2-core Xeon a step took ~2.0 s with 2 threads and ~1.9 s with
one, while a second 1-thread process ran beside it), so one 1-thread process per arm is
the fast way to use several cores.

Usage:
    python benchmarks/dwd_study.py --out runs/dwd-study-v2 [--smoke] [--arm ARM] [options]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import json
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import harness
from sod100k.checkpoints.loading import load_model, save_model
from sod100k.data.dataset import SaliencyDataset, collate_skipping_bad, pair_by_stem
from sod100k.data.images import load_gray, load_rgb
from sod100k.eval.metrics import score_image, summarize
from sod100k.infer.preprocess import postprocess, preprocess_batch
from sod100k.models import create_model
from sod100k.models.csnet import CSNet
from sod100k.models.flops import count_flops, count_params
from sod100k.train.bn_stats import reestimate_bn
from sod100k.train.dwd import DynamicWeightDecay
from sod100k.train.init import init_batchnorm
from sod100k.train.prune import (
    PruneError,
    expand_gammas,
    natural_gap,
    prune_model,
    prune_to_budget,
)
from sod100k.train.sparsity import build_sparsity, optimizer_groups
from sod100k.train.step import StepLoss
from sod100k.utils.files import atomic_save, atomic_write_text

log = logging.getLogger("dwd_study")
ARMS = ("dwd", "plain", "slim")
ARM_SPARSITY = {"dwd": "dwd", "plain": "none", "slim": "l1"}
KINDS = ("expand", "dw1", "dw2")
SHARES = {"below_1e-20": 1e-20, "below_1e-6": 1e-6, "below_1e-3": 1e-3}
DEFAULT_DATA = "../shared/data/DUTS-TR-2k"
DEFAULT_ECSSD = "../shared/data/ECSSD"


@dataclass(frozen=True)
class Settings:
    """Everything the study's numbers depend on (stored in ``state.json``)."""

    model: str = "csnet-l-x1"
    size: int = 112
    batch: int = 24
    seed: int = 0
    bn_init: str = "uniform"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 5e-3
    warmup_steps: int = 1200
    move: bool = True
    target_gamma: float = 0.011  # released nets: median surviving |gamma|
    target_var: tuple[float, float, float] = (1.4e-6, 1.4e-4, 5.6e-4)  # expand, dw1, dw2
    steps: int = 2000
    low_steps: int = 400
    low_lr: float = 1e-5
    snapshot_every: int = 200
    dwd_coefficient: float = 3.0
    budgets: tuple[float, ...] = (0.30, 0.45, 0.55, 0.65)
    key_budget: float = 0.55
    recal_batches: int = 20
    curve_images: int = 300
    full_images: int = 0  # 0: all of ECSSD
    ft_steps: int = 200
    ft_lr: float = 1e-4
    train_limit: int = 0

    @property
    def arm_steps(self) -> int:
        return self.steps + self.low_steps

    @property
    def cut_names(self) -> list[str]:
        """The stage names of the cuts, in order: ``1e-20``, ``gap``, ``-30%``, ..."""
        return ["1e-20", "gap", *map(budget_cut, self.budgets)]

    @property
    def key_cut(self) -> str:
        """The name of the cut that is fine-tuned and scored on all of ECSSD."""
        return budget_cut(self.key_budget)


def budget_cut(budget: float) -> str:
    """``-55%`` for the budget 0.55."""
    return f"-{round(100 * budget)}%"


SMOKE = {
    "size": 32,
    "batch": 4,
    "warmup_steps": 4,
    "steps": 4,
    "low_steps": 2,
    "snapshot_every": 2,
    "recal_batches": 2,
    "curve_images": 3,
    "full_images": 4,
    "ft_steps": 2,
    "train_limit": 12,
}


# ----------------------------------------------------------------------------- state
class State:
    """``state.json``: the settings and the result of every finished stage.

    Several processes may share one ``OUT`` (``--arm``): every change re-reads the file
    under an exclusive lock, applies itself and writes it back, so no process overwrites
    a stage another one finished; :meth:`exclusive` lets one process at a time run a
    stage (the others wait, then find it done).
    """

    def __init__(self, out: Path, settings: Settings) -> None:
        self.path = out / "state.json"
        self.wanted = jsonable(settings.__dict__)
        # Every launch (the first and each resumption) with its machine, command and date:
        # the report states where the study ran (a resumed run may change machines).
        meta = harness.run_meta()
        self._update(lambda data: data.setdefault("launches", []).append(meta))

    def done(self, stage: str) -> bool:
        self.data = self._read()
        return stage in self.data["stages"]

    def get(self, stage: str) -> Any:
        return self.data["stages"][stage]

    def finish(self, stage: str, result: Any) -> Any:
        value = jsonable(result)
        self._update(lambda data: data["stages"].__setitem__(stage, value))
        return self.data["stages"][stage]

    def mark_finished(self) -> None:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        self._update(lambda data: data.setdefault("finished", when))

    @contextlib.contextmanager
    def exclusive(self, job: str) -> Iterator[None]:
        """Hold ``OUT/.lock-<job>`` while the block runs (one process per job)."""
        with open(self.path.parent / f".lock-{job}", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"settings": self.wanted, "stages": {}}
        data = json.loads(self.path.read_text())
        if data["settings"] != self.wanted:
            raise SystemExit(
                f"{self.path}: made with other settings {data['settings']}; "
                "use another --out or delete it to start over"
            )
        return data

    def _update(self, change: Callable[[dict[str, Any]], Any]) -> None:
        with self.exclusive("state"):
            data = self._read()
            change(data)
            atomic_write_text(self.path, json.dumps(data, indent=1))
            self.data = data


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else v))


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_save(path, lambda f: torch.save(obj, f))


# ----------------------------------------------------------------------------- data
class Batches:
    """The batch of any step of a named stream, the same whenever it is asked for.

    Epoch ``e`` of stream ``name`` is a permutation seeded from (seed, name, e); the
    augmentation of step ``t`` is seeded from (seed, name, t). So every arm sees the same
    batches, and a resumed run the same as an uninterrupted one.
    """

    def __init__(self, data: str, s: Settings) -> None:
        self.dataset = SaliencyDataset(data, s.size, augment="csnet", skip_bad=True)
        self.plain = SaliencyDataset(data, s.size, augment="none", skip_bad=True)
        self.n = min(s.train_limit, len(self.dataset)) if s.train_limit else len(self.dataset)
        self.batch, self.seed = min(s.batch, self.n), s.seed
        self.per_epoch = self.n // self.batch

    def _seed(self, name: str, value: int) -> int:
        return (self.seed * 1_000_003 + sum(map(ord, name)) * 10_007 + value) % 2**32

    def __call__(self, name: str, step: int, augment: bool = True) -> tuple[Tensor, Tensor]:
        epoch, index = divmod(step, self.per_epoch)
        order = torch.randperm(
            self.n, generator=torch.Generator().manual_seed(self._seed(name, epoch))
        )
        np.random.seed(self._seed(name + "/aug", step))
        dataset = self.dataset if augment else self.plain
        items = [dataset[int(i)] for i in order[index * self.batch : (index + 1) * self.batch]]
        batch = collate_skipping_bad(items)
        if batch is None:
            raise RuntimeError(f"step {step} of {name}: every pair of the batch is unreadable")
        return batch

    def images(self, name: str, count: int) -> Iterator[Tensor]:
        """``count`` image batches of stream ``name`` without augmentation (for BN
        re-estimation)."""
        for step in range(count):
            yield self(name, step, augment=False)[0]


# ----------------------------------------------------------------------------- statistics
def kind_norms(model: CSNet) -> dict[str, list[nn.BatchNorm2d]]:
    """The penalised BNs by unit kind: each block's expand, dw1 and dw2 BNs."""
    return {k: [n for b in model.blocks() for n in getattr(b, k).norms.values()] for k in KINDS}


def gamma_arrays(model: CSNet) -> dict[str, np.ndarray]:
    return {
        k: torch.cat([n.weight.detach().abs().flatten() for n in norms]).numpy().astype(np.float32)
        for k, norms in kind_norms(model).items()
    }


def variance_medians(model: CSNet) -> dict[str, float]:
    """Median BN input variance (the running variance) per unit kind."""
    return {
        k: float(torch.cat([n.running_var.flatten() for n in norms]).median())
        for k, norms in kind_norms(model).items()
    }


def snapshot_stats(model: CSNet) -> dict[str, Any]:
    g = expand_gammas(model).double()
    stats = {key: float((g < t).double().mean()) for key, t in SHARES.items()}
    stats["expand_median"] = float(g.median())
    stats["expand_quantiles"] = [
        float(q) for q in torch.quantile(g, torch.tensor([0.05, 0.25, 0.75, 0.95], dtype=g.dtype))
    ]
    stats["penalised_median"] = float(np.median(np.concatenate(list(gamma_arrays(model).values()))))
    stats["var_median"] = variance_medians(model)
    stats["conv_rms"] = conv_rms(model)
    return stats


def conv_rms(model: CSNet) -> float:
    ws = [b.expand.conv.weight for b in model.blocks()]
    ws += [c.weight for b in model.blocks() for u in (b.dw1, b.dw2) for c in u.convs.values()]
    flat = torch.cat([w.detach().flatten() for w in ws])
    return float(flat.pow(2).mean().sqrt())


# ----------------------------------------------------------------------------- training
def train(
    name: str,
    model: CSNet,
    run_dir: Path,
    batches: Batches,
    stream: str,
    *,
    sparsity: str,
    steps: int,
    lr_at: Callable[[int], float],
    s: Settings,
    l1_strength: float = 0.0,
    on_snapshot: Callable[[int, CSNet], dict] | None = None,
) -> list[dict]:
    """Train ``steps`` steps on ``stream``, resuming from ``run_dir/last.pt``.

    Every ``s.snapshot_every`` steps (and at the end): ``on_snapshot`` and a checkpoint.
    Returns the per-snapshot records.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    penalty = build_sparsity(
        model, sparsity, dwd_coefficient=s.dwd_coefficient, dwd_expand=1.0, l1_strength=l1_strength
    )
    groups = optimizer_groups(model, sparsity, penalty, s.weight_decay, "reference")
    opt = torch.optim.Adam(groups, lr=s.lr, betas=s.betas)
    step_loss = StepLoss(model, penalty, channels_last=True)
    records: list[dict] = []
    start = 0
    last = run_dir / "last.pt"
    if last.exists():
        payload = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        start, records = payload["step"], payload["records"]
        log.info("%s: resuming after step %d", name, start)
    model.train()
    sums, times = {"loss": 0.0, "bce": 0.0, "penalty": 0.0}, []
    t_window = time.time()
    for step in range(start, steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        x, y = batches(stream, step)
        t = time.perf_counter()
        loss, bce, pen = step_loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
        for key, v in zip(sums, (loss, bce, pen), strict=True):
            sums[key] += float(v.detach())
        done = step + 1
        if done % 20 == 0:
            left = (steps - done) * statistics.median(times[-20:])
            log.info(
                "%s step %d/%d: loss %.4f, %.2f s/step, %.0f min left in this stage",
                name,
                done,
                steps,
                float(loss.detach()),
                statistics.median(times[-20:]),
                left / 60,
            )
        if done % s.snapshot_every == 0 or done == steps:
            n = done - (records[-1]["step"] if records else start)
            record = {k: v / max(n, 1) for k, v in sums.items()}
            record |= {
                "step": done,
                "lr": lr_at(step),
                "wall_s": time.time() - t_window,
                "median_step_s": statistics.median(times) if times else 0.0,
            }
            if on_snapshot:
                record |= on_snapshot(done, model)
                model.train()
            records.append(record)
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "step": done,
                    "records": records,
                },
                last,
            )
            log.info("%s snapshot %d: %s", name, done, _short(record))
            sums, times, t_window = dict.fromkeys(sums, 0.0), [], time.time()
    if penalty:
        penalty.remove()
    return records


def _short(record: dict) -> str:
    keep = (
        "loss",
        "bce",
        "below_1e-20",
        "below_1e-6",
        "below_1e-3",
        "expand_median",
        "var_median",
        "curve",
    )
    return json.dumps({k: record[k] for k in keep if k in record})


def contiguous(model: nn.Module) -> nn.Module:
    """``model`` itself in the NCHW layout (in place: copy first to keep a training net's
    channels-last weights, which its training step runs faster with)."""
    return model.to(memory_format=torch.contiguous_format)


# ----------------------------------------------------------------------------- the move
@torch.no_grad()
def move_to_operating_point(model: CSNet, s: Settings) -> dict[str, Any]:
    """Scale ``model`` in place to the released nets' operating point, keeping its
    eval-mode function (its running statistics must be fresh; see the module doc).

    Conv weights of each unit kind are scaled by ``c_kind`` and every penalised BN's
    output by ``c_g`` (gamma and beta; PReLU is positively homogeneous), so the input of a
    backbone BN is scaled by ``s = c_g * c_kind`` (``c_expand`` alone for the stem, whose
    input is the image; ``c_g`` for the head's fuse BNs, whose convs stay). A BN whose
    input is scaled by ``s`` and whose output should scale by ``k`` needs
    ``gamma' = k gamma sqrt(s^2 v + eps) / (s sqrt(v + eps))``, ``beta' = k beta``,
    running mean ``s m`` and variance ``s^2 v``: then ``BN'(s x) = k BN(x)`` exactly. The
    ``s`` per kind hit the target variance medians; ``c_g`` (bisection) the target median
    |gamma| over the penalised gammas.
    """
    norms = kind_norms(model)
    blocks = model.blocks()
    stem = {id(n) for n in blocks[0].expand.norms.values()}
    # the stem's input scale differs (see above): the expand target is set on the others
    med = {
        k: float(torch.cat([n.running_var for n in ns if id(n) not in stem]).median())
        for k, ns in norms.items()
    }
    scale = {k: math.sqrt(t / med[k]) for k, t in zip(KINDS, s.target_var, strict=True)}

    def plan(c_g: float) -> list[tuple[nn.BatchNorm2d, float, float]]:
        """(BN, input scale s, output scale k) for every BN the move touches."""
        out = []
        for k, ns in norms.items():
            out += [(n, scale[k] / c_g if id(n) in stem else scale[k], c_g) for n in ns]
        out += [(n, c_g, 1.0) for n in model.head.fuse.norms.values()]
        return out

    def new_gamma(n: nn.BatchNorm2d, s_in: float, k: float) -> Tensor:
        v = n.running_var.double()
        factor = torch.sqrt(s_in**2 * v + n.eps) / (s_in * torch.sqrt(v + n.eps))
        return k * n.weight.double() * factor

    penalised = {id(n) for ns in norms.values() for n in ns}

    def median_gamma(c_g: float) -> float:
        values = [new_gamma(n, s_in, k).abs() for n, s_in, k in plan(c_g) if id(n) in penalised]
        return float(torch.cat(values).median())

    lo, hi = 1e-8, 1e4
    for _ in range(200):  # bisection on a log scale: the median grows with c_g
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if median_gamma(mid) < s.target_gamma else (lo, mid)
    c_g = math.sqrt(lo * hi)
    for n, s_in, k in plan(c_g):
        n.weight.copy_(new_gamma(n, s_in, k).to(n.weight.dtype))
        n.bias.mul_(k)
        n.running_mean.mul_(s_in)
        n.running_var.mul_(s_in**2)
    conv = {k: scale[k] / c_g for k in KINDS}
    for b in blocks:
        b.expand.conv.weight.mul_(conv["expand"])
        for k in ("dw1", "dw2"):
            for c in getattr(b, k).convs.values():
                c.weight.mul_(conv[k])
    return {"c_gamma": c_g, "conv_scale": conv, "bn_input_scale": scale, "var_median_before": med}


@torch.no_grad()
def logit_change(before: nn.Module, after: nn.Module, x: Tensor) -> dict[str, float]:
    """How far ``after``'s logits are from ``before``'s on ``x``, in eval and train mode
    (train mode: batch statistics, the running ones left untouched)."""
    out = {}
    for mode in ("eval", "train"):
        nets = []
        for net in (before, after):
            net = copy.deepcopy(net)
            for m in net.modules():
                m.train(mode == "train")
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = 0.0  # train mode without touching the running stats
            nets.append(net(x).double())
        diff = (nets[1] - nets[0]).abs()
        out[f"{mode}_max_abs"] = float(diff.max())
        out[f"{mode}_mean_abs"] = float(diff.mean())
        out[f"{mode}_logit_rms"] = float(nets[0].pow(2).mean().sqrt())
        prob = (torch.sigmoid(nets[1]) - torch.sigmoid(nets[0])).abs()
        out[f"{mode}_prob_max_abs"] = float(prob.max())
    return out


def dwd_gradient_mean(model: CSNet, batches: list[Tensor], s: Settings) -> float:
    """Mean |d DWD / d gamma| over the penalised gammas (train mode, running statistics
    left untouched), averaged over ``batches``: the L1 strength that matches it."""
    net = copy.deepcopy(model).train()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0
    dwd = DynamicWeightDecay(net, s.dwd_coefficient, 1.0)
    gammas = list(dwd.gammas())
    means = []
    for x in batches:
        net(x)  # with gradients on: the hooks record |GAP| of every unit's output
        grads = torch.autograd.grad(dwd.penalty(), gammas)
        means.append(float(torch.cat([g.abs().flatten() for g in grads]).mean()))
    dwd.remove()
    return statistics.fmean(means)


# ----------------------------------------------------------------------------- scoring
class Ecssd:
    """ECSSD scored with the reference test protocol at the study's input size."""

    def __init__(self, root: str, size: int) -> None:
        self.pairs = pair_by_stem(root)
        self.size = size

    def count(self, limit: int) -> int:
        return min(limit, len(self.pairs)) if limit else len(self.pairs)

    @torch.no_grad()
    def score(self, model: nn.Module, limit: int) -> dict:
        """MAE, max F (beta^2 0.3), S-measure on the first ``limit`` images (0: all)."""
        model = contiguous(copy.deepcopy(model)).eval()
        pairs = self.pairs[: self.count(limit)]
        results = []
        for i in range(0, len(pairs), 16):
            chunk = pairs[i : i + 16]
            images = [load_rgb(p) for p, _ in chunk]
            logits = model(torch.from_numpy(preprocess_batch(images, self.size)))[:, 0].numpy()
            for lg, img, (_, mask_path) in zip(logits, images, chunk, strict=True):
                pred = postprocess(lg, img.shape[0], img.shape[1])
                results.append(score_image(pred, load_gray(mask_path)))
        m = summarize(results).metrics
        return {"images": len(results), "mae": m["MAE"], "max_f": m["maxF"], "s_measure": m["Sm"]}


def describe(model: nn.Module) -> dict:
    net = contiguous(copy.deepcopy(model))
    return {"params": count_params(net), "flops_224": count_flops(net)}


# ----------------------------------------------------------------------------- stages
def warmup_and_move(out: Path, state: State, s: Settings, batches: Batches, ecssd: Ecssd) -> Path:
    """The shared start of the three arms (``start.pt``)."""
    wdir = out / "warmup"
    if not state.done("warmup"):
        torch.manual_seed(s.seed)
        model = create_model(s.model)
        init_batchnorm(model, s.bn_init, s.seed)
        gammas = GammaLog(wdir / "gammas.npz")
        gammas.add(0, model)
        records = train(
            "warmup",
            model,
            wdir,
            batches,
            "warmup",
            sparsity="none",
            steps=s.warmup_steps,
            lr_at=lambda _: s.lr,
            s=s,
            on_snapshot=snapshotter(gammas, ecssd, s),
        )
        save_model(wdir / "warm.pt", contiguous(model), metadata={"study": "warmup"})
        state.finish("warmup", {"records": records, "start": snapshot_stats_of_init(s)})
    start = out / "start.pt"
    if not state.done("move"):
        model = load_model(weights=str(wdir / "warm.pt"))
        calib = list(batches.images("calib", s.recal_batches))
        reestimate_bn(model, calib)
        result: dict[str, Any] = {"before": snapshot_stats(model) | describe(model)}
        result["before"]["ecssd"] = ecssd.score(model, s.curve_images)
        if s.move:
            moved = copy.deepcopy(model)
            result["scales"] = move_to_operating_point(moved, s)
            x = calib[0]
            result["logits_after_move"] = logit_change(model, moved, x)
            result["moved_ecssd"] = ecssd.score(moved, s.curve_images)
            reestimate_bn(moved, calib)
            result["logits_after_move_and_reestimation"] = logit_change(model, moved, x)
            model = moved
        result["after"] = snapshot_stats(model)
        result["after"]["ecssd"] = ecssd.score(model, s.curve_images)
        result["dwd_gradient_mean"] = dwd_gradient_mean(model, calib[:4], s)
        save_model(start, contiguous(model), metadata={"study": "start"})
        state.finish("move", result)
        log.info("move: %s", json.dumps(state.get("move"))[:2000])
    return start


def snapshot_stats_of_init(s: Settings) -> dict:
    torch.manual_seed(s.seed)
    model = create_model(s.model)
    init_batchnorm(model, s.bn_init, s.seed)
    return snapshot_stats(model)


class GammaLog:
    """``gammas.npz``: the penalised |gamma| by unit kind at every snapshot (atomic)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.arrays = dict(np.load(path)) if path.exists() else {}

    def add(self, step: int, model: CSNet) -> None:
        for kind, values in gamma_arrays(model).items():
            self.arrays[f"{kind}_{step}"] = values
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(self.path, lambda f: np.savez_compressed(f, **self.arrays))


def snapshotter(gammas: GammaLog, ecssd: Ecssd, s: Settings) -> Callable[[int, CSNet], dict]:
    def on_snapshot(step: int, model: CSNet) -> dict:
        gammas.add(step, model)
        return snapshot_stats(model) | {"curve": ecssd.score(model, s.curve_images)}

    return on_snapshot


def train_arm(
    arm: str, out: Path, state: State, s: Settings, batches: Batches, ecssd: Ecssd, start: Path
) -> Path:
    """One arm from ``start.pt``: ``trained.pt``, the step-``arm_steps - snapshot`` net."""
    adir = out / f"arm-{arm}"
    if not state.done(f"train-{arm}"):
        model = load_model(weights=str(start))
        gammas = GammaLog(adir / "gammas.npz")
        gammas.add(0, model)
        strength = state.get("move")["dwd_gradient_mean"] if arm == "slim" else 0.0
        previous = adir / "previous.pt"
        snap = snapshotter(gammas, ecssd, s)

        def on_snapshot(step: int, m: CSNet) -> dict:
            if step == s.arm_steps - s.snapshot_every:  # for the noise estimate
                save_model(previous, contiguous(copy.deepcopy(m)), metadata={"step": step})
            return snap(step, m)

        records = train(
            arm,
            model,
            adir,
            batches,
            "arms",
            sparsity=ARM_SPARSITY[arm],
            steps=s.arm_steps,
            s=s,
            l1_strength=strength,
            lr_at=lambda t: s.lr if t < s.steps else s.low_lr,
            on_snapshot=on_snapshot,
        )
        model = contiguous(model)
        save_model(adir / "trained.pt", model, metadata={"study": arm, "step": s.arm_steps})
        result = {
            "records": records,
            "l1_strength": strength,
            "full": ecssd.score(model, s.full_images),
        }
        if previous.exists():
            result["previous_full"] = ecssd.score(load_model(weights=str(previous)), s.full_images)
            result["previous_step"] = s.arm_steps - s.snapshot_every
        state.finish(f"train-{arm}", result | describe(model))
    return adir / "trained.pt"


def cuts(model: CSNet, s: Settings) -> list[tuple[str, Callable[[], Any]]]:
    """The named cuts: 1e-20, the natural gap, each budget (thunks: prune on demand)."""
    out: list[tuple[str, Callable[[], Any]]] = [
        ("1e-20", lambda: (prune_model(model, 1e-20), 1e-20, True, None))
    ]

    def at_gap():
        gap = natural_gap(model)
        return prune_model(model, gap.threshold), gap.threshold, True, gap

    out.append(("gap", at_gap))
    for b in s.budgets:

        def budget(b=b):
            cut = prune_to_budget(model, b)
            return cut.result, cut.threshold, cut.met, None

        out.append((budget_cut(b), budget))
    return out


def prune_arm(
    arm: str, out: Path, state: State, s: Settings, batches: Batches, ecssd: Ecssd, trained: Path
) -> None:
    """Every cut of one arm, with BN re-estimation only; the key-budget fine-tune."""
    model = load_model(weights=str(trained))
    calib = list(batches.images("calib", s.recal_batches))
    key = s.key_cut
    if not state.done(f"unpruned-{arm}"):
        net = copy.deepcopy(model)
        reestimate_bn(net, calib)
        state.finish(
            f"unpruned-{arm}",
            describe(net)
            | {"curve": ecssd.score(net, s.curve_images), "full": ecssd.score(net, s.full_images)},
        )
    for name, make in cuts(model, s):
        stage = f"prune-{arm}-{name}"
        if state.done(stage):
            continue
        t0 = time.time()
        try:
            result, threshold, met, gap = make()
        except PruneError as e:
            state.finish(stage, {"error": str(e)})
            log.info("%s: %s", stage, e)
            continue
        net = result.model
        reestimate_bn(net, calib)
        record = {
            "threshold": threshold,
            "budget_met": met,
            "removed_channels": result.removed,
            "config": [list(u.out_channels) for u in result.config.units],
        }
        if gap is not None:
            record["gap"] = {
                "lower": gap.lower,
                "upper": gap.upper,
                "decades": gap.decades,
                "below": gap.below,
                "total": gap.total,
            }
        record |= describe(net) | {"curve": ecssd.score(net, s.curve_images)}
        if name in ("gap", key):
            record["full"] = ecssd.score(net, s.full_images)
            path = out / f"arm-{arm}" / f"pruned{'-gap' if name == 'gap' else key}.pt"
            save_model(
                path, contiguous(net), metadata={"study": arm, "cut": name, "threshold": threshold}
            )
        record["seconds"] = time.time() - t0
        state.finish(stage, record)
        log.info("%s: %s", stage, json.dumps(record)[:400])
    stage = f"ft-{arm}"
    pruned = out / f"arm-{arm}" / f"pruned{key}.pt"
    if not state.done(stage) and pruned.exists():
        net = load_model(weights=str(pruned))
        records = train(
            f"{arm} fine-tune",
            net,
            out / f"ft-{arm}",
            batches,
            "finetune",
            sparsity="none",
            steps=s.ft_steps,
            lr_at=lambda _: s.ft_lr,
            s=s,
        )
        net = contiguous(net)
        save_model(out / f"arm-{arm}" / f"finetuned{key}.pt", net, metadata={"study": arm})
        state.finish(
            stage, {"records": records, "full": ecssd.score(net, s.full_images)} | describe(net)
        )


def missing_stages(stages: dict[str, Any], s: Settings) -> list[str]:
    """The stages a finished study has that ``stages`` lacks (the fine-tune of an arm
    whose key cut could not be made does not exist)."""
    wanted = ["warmup", "move"]
    for arm in ARMS:
        wanted += [f"train-{arm}", f"unpruned-{arm}", *(f"prune-{arm}-{c}" for c in s.cut_names)]
        if "error" not in stages.get(f"prune-{arm}-{s.key_cut}", {}):
            wanted.append(f"ft-{arm}")
    return [stage for stage in wanted if stage not in stages]


def run_study(
    out: Path, s: Settings, data: str, ecssd_root: str, arms: tuple[str, ...] = ARMS
) -> State:
    """Run (or continue) the stages of ``arms`` (and the shared warm-up) in ``out``.

    Processes given different ``arms`` may share ``out`` (each job runs under its own
    lock; a process that needs a job another one holds waits, then finds it done); the
    last to finish marks the study finished.
    """
    out.mkdir(parents=True, exist_ok=True)
    state = State(out, s)
    batches = Batches(data, s)
    ecssd = Ecssd(ecssd_root, s.size)
    with state.exclusive("warmup"):
        start = warmup_and_move(out, state, s, batches, ecssd)
    trained = {}
    for arm in arms:
        with state.exclusive(f"train-{arm}"):
            trained[arm] = train_arm(arm, out, state, s, batches, ecssd, start)
    for arm in arms:
        with state.exclusive(f"prune-{arm}"):
            prune_arm(arm, out, state, s, batches, ecssd, trained[arm])
    left = missing_stages(state.data["stages"], s)
    if left:
        log.info("this process's arms are done; still missing: %s", ", ".join(left))
    else:
        state.mark_finished()
    return state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/dwd-study-v2"))
    p.add_argument("--data", default=DEFAULT_DATA, help="training pairs (images/ + masks/)")
    p.add_argument("--ecssd", default=DEFAULT_ECSSD, help="ECSSD (images/ + masks/)")
    p.add_argument("--smoke", action="store_true", help="a tiny configuration, minutes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--arm",
        action="append",
        choices=ARMS,
        help="run only this arm (repeatable; after the shared warm-up, which the first "
        "process to need it runs while the others wait): start one process per arm, each "
        "with --threads 1, to use more cores (default: every arm, one after the other)",
    )
    defaults = Settings()
    for name, value in defaults.__dict__.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction)
        elif isinstance(value, tuple):
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
    state = run_study(args.out, s, args.data, args.ecssd, tuple(args.arm or ARMS))
    print(f"done in {time.time() - t0:.0f} s this invocation; outputs in {args.out}")
    if "finished" in state.data:
        print(f"report: python benchmarks/dwd_study_report.py {args.out}")
    else:
        print("other arms still to run (--arm); the last process to finish marks the study done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
