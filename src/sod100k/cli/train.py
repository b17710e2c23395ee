"""``sod100k train``: train a model on an images/ + masks/ folder (also under torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sod100k.cli.common import CLIError, check_device
from sod100k.data.dataset import AUGMENTATIONS, DatasetError, pair_by_stem
from sod100k.models import registry
from sod100k.train.config import GAMMA_WEIGHT_DECAY, build_config
from sod100k.train.init import BN_INITS
from sod100k.train.loop import Trainer
from sod100k.train.sparsity import SPARSITY
from sod100k.train.step import LAYOUTS


def add_training_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``finetune``; unset ones come from recipe/config."""
    p.add_argument("--data", help="training set: images/ + masks/ (or DUTS *-Image/*-Mask)")
    p.add_argument("--val", help="validation set, same layout (MAE and max F every epoch)")
    p.add_argument("--out", help="run folder for checkpoints and logs")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--config", help="TOML file with training options (CLI values win)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--accumulate", type=int, help="gradient accumulation steps")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--milestones", type=int, nargs="+", help="epochs where lr drops")
    p.add_argument("--size", type=int, help="training side in pixels (0: native, batch 1)")
    p.add_argument("--augment", choices=AUGMENTATIONS, help="csnet: crop + flip; flip: l-r")
    p.add_argument("--loss-reduction", choices=("mean", "sum"), help="BCE over the pixels")
    p.add_argument(
        "--frozen-bn",
        action=argparse.BooleanOptionalAction,
        help="keep every BatchNorm on its running statistics",
    )
    p.add_argument("--backbone-weights", help="ImageNet backbone weights (csf-res2net50)")
    p.add_argument(
        "--from-scratch",
        action="store_true",
        default=None,
        help="train csf-res2net50 without ImageNet backbone weights",
    )
    p.add_argument(
        "--gamma-weight-decay",
        choices=GAMMA_WEIGHT_DECAY,
        help="reference: the dw2 gammas get plain weight decay on top of DWD, as the "
        "reference train.py; exempt: every DWD gamma is exempt (the evident intent)",
    )
    p.add_argument(
        "--reset-optimizer",
        action=argparse.BooleanOptionalAction,
        help="a new Adam (fresh moments) at every lr milestone (CSF reference)",
    )
    p.add_argument(
        "--bn-recalibrate",
        action="store_true",
        default=None,
        help="no parameter update: only BatchNorm running statistics follow the data "
        "(what the reference finetune.py does in effect; 20 epochs by default)",
    )
    p.add_argument(
        "--sparsity",
        choices=SPARSITY,
        help="penalty on the backbone's BN gammas: dwd (dynamic weight decay, the CSNet "
        "recipe), l1 (network slimming, Liu et al. 2017; the gammas get no plain weight "
        "decay) or none",
    )
    p.add_argument(
        "--dwd",
        dest="sparsity",
        action="store_const",
        const="dwd",
        help="same as --sparsity dwd",
    )
    p.add_argument(
        "--no-dwd",
        dest="sparsity",
        action="store_const",
        const="none",
        help="same as --sparsity none",
    )
    p.add_argument(
        "--l1-strength",
        type=float,
        help="--sparsity l1: the penalty strength * sum |gamma| (default 1e-4)",
    )
    p.add_argument(
        "--bn-init",
        choices=BN_INITS,
        help="BatchNorm gammas of a net trained from scratch: uniform = U(0,1) seeded by "
        "--seed (PyTorch 1.0, as the reference; the CSNet default) or ones",
    )
    p.add_argument("--dwd-coefficient", type=float)
    p.add_argument("--dwd-expand", type=float, help="FLOPs expansion factor of DWD")
    p.add_argument("--workers", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        help="mixed precision on CUDA (off by default: the reference trains in fp32)",
    )
    p.add_argument("--val-limit", type=int, help="validate on the first N images only")
    p.add_argument(
        "--memory-format",
        choices=LAYOUTS,
        help="tensor layout of the step (auto: channels_last on CPU, faster convolutions)",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="torch.compile the step's loss (compiles for minutes first; long runs only)",
    )
    p.add_argument(
        "--checkpoint-activations",
        action=argparse.BooleanOptionalAction,
        help="keep only each block's input for the backward pass and recompute the rest "
        "there: much less memory, the same gradients, about one more forward pass of time",
    )


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a model (CSNet: dynamic weight decay; csf-res2net50: the CSF recipe)",
        description="Defaults come from the model's reference recipe (see sod100k.train."
        "recipes), then --config, then the options given here.",
    )
    p.add_argument("--model", "-m", help="preset to train from scratch (default csnet-l-x2)")
    p.add_argument("--init", help="start from these weights (e.g. a pruned checkpoint)")
    add_training_args(p)
    return p


OPTION_NAMES = [
    "data",
    "val",
    "out",
    "model",
    "init",
    "batch_size",
    "accumulate",
    "epochs",
    "lr",
    "weight_decay",
    "milestones",
    "size",
    "sparsity",
    "l1_strength",
    "bn_init",
    "dwd_coefficient",
    "dwd_expand",
    "workers",
    "seed",
    "device",
    "amp",
    "val_limit",
    "augment",
    "loss_reduction",
    "frozen_bn",
    "backbone_weights",
    "from_scratch",
    "gamma_weight_decay",
    "reset_optimizer",
    "bn_recalibrate",
    "memory_format",
    "compile",
    "checkpoint_activations",
]


def run(args: argparse.Namespace, finetune: bool = False) -> int:
    overrides = {k: getattr(args, k, None) for k in OPTION_NAMES}
    config_file = args.config
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "last.pt").is_file():
            raise CLIError(f"{run_dir}: no last.pt to resume from")
        saved = _saved_options(run_dir / "last.pt")
        overrides = {**saved, **{k: v for k, v in overrides.items() if v is not None}}
        overrides["out"] = str(run_dir)
    for name in ("data", "out"):
        if not overrides.get(name):
            raise CLIError(f"--{name} is required")
    out = Path(overrides["out"])
    if not args.resume and (out / "last.pt").exists():
        raise CLIError(f"{out}: holds a run already; use --resume {out} or another --out")
    if overrides.get("device"):
        check_device(overrides["device"])
    arch = _arch(overrides, getattr(args, "model", None))
    cfg = build_config(arch, overrides, config_file, finetune=finetune)
    for option in ("data", "val"):  # before the run folder is made
        _check_dataset(option, getattr(cfg, option))
    trainer = Trainer(cfg, resume=bool(args.resume))
    try:
        history = trainer.fit()
    finally:
        trainer.close()
    if trainer.is_main and history:
        last = dict(history[-1])
        peak = last.pop("peak_rss_gb", None)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items())
        print(f"{out}: {len(history)} epoch(s) trained; last: {shown}")
        if peak is not None:
            print(f"peak memory (resident, main process): {peak:.2f} GB")
    return 0


def _check_dataset(option: str, root: str | None) -> None:
    """Refuse an unusable ``--data``/``--val`` folder in one line (exit status 2)."""
    if root:
        try:
            pair_by_stem(root)
        except DatasetError as e:
            raise CLIError(f"--{option} {e}") from e


def _arch(overrides: dict, model_given: str | None = None) -> str:
    """The architecture the run trains: ``--init``'s, else ``--model``'s preset's.

    Raises:
        CLIError: ``model_given`` (``--model`` on this command line) is a preset of
            another architecture than the ``--init`` checkpoint (one would be ignored).
    """
    if overrides.get("init"):
        from sod100k.checkpoints.loading import load_weights

        arch = load_weights(overrides["init"])[0]
        given_arch = registry.get_preset(model_given).arch if model_given else arch
        if given_arch != arch:
            raise CLIError(
                f"--model {model_given} is a {given_arch} preset "
                f"but --init {overrides['init']} holds a {arch} network; the run trains the "
                "--init network: drop --model, or give a checkpoint of that model"
            )
        return arch
    return registry.get_preset(overrides.get("model") or "csnet-l-x2").arch


def _saved_options(path: Path) -> dict:
    from sod100k.checkpoints.native import read_checkpoint

    extra = read_checkpoint(path).get("extra") or {}
    return dict(extra.get("train_config", {}))
