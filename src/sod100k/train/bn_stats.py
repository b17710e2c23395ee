"""Re-estimating BatchNorm running statistics on data (no parameter changes).

What the reference fine-tune does in effect after pruning (its Adam holds the unpruned
net's parameters, so the pruned net only sees forward passes in train mode), done
directly: the running statistics are reset and replaced by the plain average of the
batch statistics of ``N`` batches (``momentum=None``), rather than an exponential
average that still remembers the unpruned net.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler, Subset

from sod100k.data.dataset import SaliencyDataset, collate_skipping_bad


def _norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def reestimate_bn(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Replace every BatchNorm's running mean and variance by their average over ``batches``.

    Args:
        model: the network (its parameters and train/eval mode are left as they were).
        batches: normalised image batches ``(N, 3, H, W)`` on the model's device.

    Returns:
        The number of batches seen.

    Raises:
        ValueError: ``batches`` was empty (the statistics would be undefined).
    """
    norms = _norms(model)
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: each batch counts equally
    model.train()
    seen = 0
    try:
        for x in batches:
            model(x)
            seen += 1
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    if seen == 0:
        raise ValueError("no batches to re-estimate the BatchNorm statistics on")
    return seen


def calibration_batches(
    data: str, batches: int, batch_size: int = 24, size: int = 224, seed: int = 0
) -> list[Tensor]:
    """The first ``batches`` batches of a seeded shuffle of ``data`` (images/ + masks/),
    resized to ``size`` without augmentation; unreadable pairs are skipped (logged).

    Raises:
        sod100k.data.dataset.DatasetError: ``data`` holds no image/mask pairs.
    """
    dataset = SaliencyDataset(data, size, augment="none", skip_bad=True)
    take = min(len(dataset), batches * batch_size)
    order = list(RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)))
    loader = DataLoader(
        Subset(dataset, order[:take]),
        batch_size=batch_size,
        num_workers=0,
        collate_fn=collate_skipping_bad,
    )
    return [batch[0] for batch in loader if batch is not None]
