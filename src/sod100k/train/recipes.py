"""Default training recipes per architecture, equal to the reference code's."""

from __future__ import annotations

from typing import Any

#: Keyed by architecture name; ``finetune`` overrides the recipe for ``sod100k finetune``.
RECIPES: dict[str, dict[str, Any]] = {
    "csnet": {
        "batch_size": 24,
        "accumulate": 1,
        "epochs": 300,
        "lr": 1e-4,
        "betas": (0.9, 0.99),
        "weight_decay": 5e-3,
        "milestones": (200, 250),
        "lr_gamma": 0.1,
        "size": 224,
        "sparsity": "dwd",
        "dwd_coefficient": 3.0,
        # PyTorch 1.0's BatchNorm (the authors' framework) drew gamma from U(0, 1).
        "bn_init": "uniform",
        # The reference's published training config (CSNet_training/configs/
        # csnet-L-x2_train.yml) sets AUTO.FLOPS.EXPAND 1.0, i.e. every f_k = 1; the hook's
        # built-in fallback (used when a config leaves it at -1) is 2.
        "dwd_expand": 1.0,
        # train.py's weight-decay groups: the conv3x3_2 (dw2) gammas keep weight decay.
        "gamma_weight_decay": "reference",
    },
    # CSF + Res2Net-50 (reference CSF+Res2Net/main.py and solver.py, PoolNet style):
    # batch 1 at the image's own size with 10-step gradient accumulation, left-right
    # flip only, BCE summed over the pixels (divided by the accumulation), Adam with
    # torch's default betas, the whole net in eval mode (frozen BN), lr x0.1 after the
    # epoch with index 15 (the reference checks ``epoch in [15]`` at the end of that
    # epoch, so 0-based epochs 16..23 run at 5e-6) with a new Adam (moments reset).
    "csf-res2net50": {
        "batch_size": 1,
        "accumulate": 10,
        "epochs": 24,
        "lr": 5e-5,
        "betas": (0.9, 0.999),
        "weight_decay": 5e-4,
        "milestones": (16,),
        "lr_gamma": 0.1,
        "size": 0,
        "augment": "flip",
        "loss_reduction": "sum",
        "frozen_bn": True,
        "sparsity": "none",
        "reset_optimizer": True,
    },
}

#: Fine-tuning a pruned net (ours, not the reference's): the training recipe without
#: DWD, lr 1e-4 with steps at epochs 50 and 100 (the lr steps of the reference yml's
#: SOLVER.FINETUNE, which only its train.py reads), 150 epochs. The reference finetune.py
#: in effect only recalibrates BN statistics: see BN_RECALIBRATE.
FINETUNE: dict[str, dict[str, Any]] = {
    "csnet": {"epochs": 150, "milestones": (50, 100), "sparsity": "none"},
}

#: What the reference finetune.py does in effect (its Adam holds the unpruned net's
#: parameters, so the pruned net only sees forward passes in train mode): 20 epochs
#: (FINETUNE.SOLVER) in which only BatchNorm running statistics change.
BN_RECALIBRATE: dict[str, Any] = {"epochs": 20, "sparsity": "none", "bn_recalibrate": True}


def recipe(arch: str, finetune: bool = False, recalibrate: bool = False) -> dict[str, Any]:
    """The default hyper-parameters of ``arch``.

    Args:
        arch: architecture name (a key of :data:`RECIPES`).
        finetune: the fine-tuning schedule of a pruned net (:data:`FINETUNE`).
        recalibrate: BN recalibration only (:data:`BN_RECALIBRATE`); implies ``finetune``.

    Raises:
        ValueError: no recipe for ``arch``.
    """
    if arch not in RECIPES:
        raise ValueError(f"no training recipe for architecture {arch!r}; known: {sorted(RECIPES)}")
    out = dict(RECIPES[arch])
    if finetune or recalibrate:
        out.update(FINETUNE.get(arch, {}))
    if recalibrate:
        out.update(BN_RECALIBRATE)
    return out
