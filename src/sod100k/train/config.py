"""Training configuration: recipe defaults, then a TOML file, then command-line values."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sod100k.data.dataset import AUGMENTATIONS
from sod100k.models.config import ConfigError
from sod100k.train.init import BN_INITS
from sod100k.train.recipes import recipe
from sod100k.train.sparsity import SPARSITY
from sod100k.train.step import LAYOUTS

#: Which DWD gammas get the plain weight decay too (see :class:`TrainConfig`).
GAMMA_WEIGHT_DECAY = ("reference", "exempt")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved in every checkpoint).

    ``size`` is the square training side (0: images at their own size, batch 1, as the
    reference CSF recipe); ``augment`` is ``"csnet"`` (random crop + flip, the CSNet
    recipe), ``"flip"`` (left-right flip only, the CSF recipe) or ``"none"``;
    ``frozen_bn`` keeps every BatchNorm on its running statistics (the reference CSF
    training runs the whole net in eval mode); ``backbone_weights`` names ImageNet
    weights for a backbone (CSF + Res2Net-50), required unless ``from_scratch``.

    ``gamma_weight_decay`` picks which DWD gammas also get the plain weight decay:
    ``"reference"`` (the reference train.py: only the expand and first depthwise gammas
    are exempt, the second depthwise gammas get both) or ``"exempt"`` (every gamma under
    DWD is exempt, the evident intent). ``reset_optimizer`` creates a new Adam (fresh
    moments) at every lr milestone, as the reference CSF solver. ``amp`` is mixed
    precision on CUDA (opt-in; the reference trains in fp32). ``bn_recalibrate`` only
    runs the data through the net in train mode without any parameter update, so only
    BatchNorm running statistics change (what the reference finetune.py does in effect).

    ``sparsity`` is the penalty on the backbone's BN gammas: ``"dwd"`` (dynamic weight
    decay, the recipe), ``"l1"`` (network slimming, ``l1_strength * sum |gamma|``) or
    ``"none"``; under ``"l1"`` the penalised gammas get no plain weight decay.
    ``bn_init`` is how a net trained from scratch starts its BatchNorm gammas:
    ``"uniform"`` (U(0, 1), seeded: PyTorch 1.0, the reference) or ``"ones"``; a net
    started from ``init`` keeps its own.

    ``memory_format`` is ``"auto"`` (NHWC on CPU, where oneDNN convolutions run faster
    in it), ``"channels_last"`` or ``"contiguous"``; ``compile`` builds the step's loss
    with ``torch.compile``. ``checkpoint_activations`` keeps only each block's input for
    the backward pass and recomputes the rest there (less memory, the same gradients and
    BatchNorm statistics; see :mod:`sod100k.train.memory`).
    """

    data: str
    out: str
    model: str = "csnet-l-x2"
    val: str | None = None
    init: str | None = None
    batch_size: int = 24
    accumulate: int = 1
    epochs: int = 300
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 5e-3
    milestones: tuple[int, ...] = (200, 250)
    lr_gamma: float = 0.1
    size: int = 224
    sparsity: str = "dwd"
    l1_strength: float = 1e-4
    bn_init: str = "ones"
    dwd_coefficient: float = 3.0
    dwd_expand: float = 1.0
    workers: int = 2
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    val_limit: int | None = None
    augment: str = "csnet"
    loss_reduction: str = "mean"
    frozen_bn: bool = False
    backbone_weights: str | None = None
    from_scratch: bool = False
    gamma_weight_decay: str = "reference"
    reset_optimizer: bool = False
    bn_recalibrate: bool = False
    memory_format: str = "auto"
    compile: bool = False
    checkpoint_activations: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "accumulate", "epochs"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.size < 0 or (self.size == 0 and self.batch_size != 1):
            raise ConfigError(
                f"size must be positive (or 0 = native image size, with batch_size 1), "
                f"got size {self.size} with batch_size {self.batch_size}"
            )
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}")
        if self.loss_reduction not in ("mean", "sum"):
            raise ConfigError(f"loss_reduction must be mean or sum, got {self.loss_reduction!r}")
        if self.gamma_weight_decay not in GAMMA_WEIGHT_DECAY:
            raise ConfigError(
                f"gamma_weight_decay must be one of {GAMMA_WEIGHT_DECAY}, "
                f"got {self.gamma_weight_decay!r}"
            )
        if self.sparsity not in SPARSITY:
            raise ConfigError(f"sparsity must be one of {SPARSITY}, got {self.sparsity!r}")
        if self.bn_init not in BN_INITS:
            raise ConfigError(f"bn_init must be one of {BN_INITS}, got {self.bn_init!r}")
        if self.lr <= 0 or min(self.weight_decay, self.dwd_coefficient, self.l1_strength) < 0:
            raise ConfigError(
                "lr must be positive, weight_decay, dwd_coefficient and l1_strength >= 0"
            )
        if self.memory_format not in LAYOUTS:
            raise ConfigError(f"memory_format must be one of {LAYOUTS}, got {self.memory_format!r}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")

    @property
    def dwd(self) -> bool:
        """Whether dynamic weight decay is on (``sparsity == "dwd"``)."""
        return self.sparsity == "dwd"


FIELDS = {f.name for f in fields(TrainConfig)}
#: ``dwd = true|false`` (before ``sparsity``): still read from TOML files and the
#: training options saved in older checkpoints.
LEGACY_FIELDS = {"dwd"}


def _upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """``dwd = b`` -> ``sparsity = "dwd" | "none"`` (unless ``sparsity`` is given too)."""
    values = dict(values)
    dwd = values.pop("dwd", None)
    if dwd is not None and values.get("sparsity") is None:
        values["sparsity"] = "dwd" if dwd else "none"
    return values


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; unknown keys are an error naming the file."""
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read training config: {e}") from e
    unknown = sorted(set(values) - FIELDS - LEGACY_FIELDS)
    if unknown:
        raise ConfigError(f"{path}: unknown training option(s): {', '.join(unknown)}")
    return values


def build_config(
    arch: str, overrides: dict[str, Any], file: str | Path | None = None, finetune: bool = False
) -> TrainConfig:
    """Recipe of ``arch`` <- TOML ``file`` <- ``overrides`` (``None`` values are ignored)."""
    values: dict[str, Any] = recipe(arch, finetune, bool(overrides.get("bn_recalibrate")))
    if file is not None:
        values.update(_upgrade(read_toml(file)))
    values.update({k: v for k, v in _upgrade(overrides).items() if v is not None})
    for key in ("betas", "milestones"):
        values[key] = tuple(values[key])
    try:
        return TrainConfig(**values)
    except TypeError as e:
        raise ConfigError(f"training config: {e}") from e
