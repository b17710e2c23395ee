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
        "dwd": True,
        "dwd_coefficient": 3.0,
        # The reference's published training config (CSNet_training/configs/
        # csnet-L-x2_train.yml) sets AUTO.FLOPS.EXPAND 1.0, i.e. every f_k = 1; the hook's
        # built-in fallback (used when a config leaves it at -1) is 2.
        "dwd_expand": 1.0,
    },
    # CSF + Res2Net-50 (reference CSF+Res2Net/main.py and solver.py, PoolNet style):
    # batch 1 at the image's own size with 10-step gradient accumulation, left-right
    # flip only, BCE summed over the pixels (divided by the accumulation), Adam with
    # torch's default betas, the whole net in eval mode (frozen BN), lr x0.1 after the
    # epoch with index 15 (the reference checks ``epoch in [15]`` at the end of that
    # epoch, so 0-based epochs 16..23 run at 5e-6).
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
        "dwd": False,
    },
}

#: Fine-tuning a pruned net (reference finetune.py): lr steps at 50 and 100, no more decay
#: of the gammas. The epoch count is ours: the reference stops by hand after the last step.
FINETUNE: dict[str, dict[str, Any]] = {
    "csnet": {"epochs": 150, "milestones": (50, 100), "dwd": False},
}


def recipe(arch: str, finetune: bool = False) -> dict[str, Any]:
    """The default hyper-parameters of ``arch`` (for fine-tuning when ``finetune``)."""
    if arch not in RECIPES:
        raise ValueError(f"no training recipe for architecture {arch!r}; known: {sorted(RECIPES)}")
    out = dict(RECIPES[arch])
    if finetune:
        out.update(FINETUNE.get(arch, {}))
    return out
