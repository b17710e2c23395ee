"""The trainer: BCE-with-logits on saliency masks, Adam, step schedule, dynamic weight decay.

Runs in one process or under ``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on
CUDA); only rank 0 validates, logs and writes checkpoints. Every epoch ends with an
atomic ``last.pt`` that holds the optimizer state, so ``resume`` continues exactly: the
shuffling and augmentation of each epoch are seeded from ``seed`` and the epoch number.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import py_sod_metrics
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset
from tqdm import tqdm

from sod100k.checkpoints.loading import load_model, save_model
from sod100k.checkpoints.native import read_checkpoint
from sod100k.data.dataset import SaliencyDataset, collate_skipping_bad
from sod100k.models import registry
from sod100k.models.config import ConfigError
from sod100k.models.csnet import CSNet
from sod100k.train.config import TrainConfig
from sod100k.train.init import init_batchnorm
from sod100k.train.memory import enable_activation_checkpointing, peak_rss_bytes
from sod100k.train.metrics_log import MetricsLog
from sod100k.train.sparsity import SparsityPenalty, build_sparsity, optimizer_groups
from sod100k.train.step import StepLoss, bce_loss, use_channels_last
from sod100k.utils.malloc import keep_freed_memory

log = logging.getLogger(__name__)


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Step schedule: ``lr`` times ``lr_gamma`` for every milestone reached (0-based epochs)."""
    return cfg.lr * cfg.lr_gamma ** sum(epoch >= m for m in cfg.milestones)


def _seed_worker(_worker_id: int) -> None:
    np.random.seed(torch.initial_seed() % 2**32)


class Trainer:
    """One training run in ``cfg.out``; :meth:`fit` trains to ``cfg.epochs``."""

    def __init__(self, cfg: TrainConfig, resume: bool = False) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = torch.device(cfg.device)
        if self.world > 1 and not dist.is_initialized():
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.amp = cfg.amp and self.device.type == "cuda"
        if self.device.type == "cpu":
            keep_freed_memory()  # no page faults for the step's large buffers
        torch.manual_seed(cfg.seed)
        self.model = self._build_model().to(self.device)
        self.channels_last = use_channels_last(cfg.memory_format, self.device)
        if self.channels_last:  # before DDP wraps the parameters
            self.model.to(memory_format=torch.channels_last)
        if cfg.checkpoint_activations:
            enable_activation_checkpointing(self.model)
        self._set_train_mode()
        self.sparsity = self._build_sparsity()
        self.optimizer = self._build_optimizer()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.start_epoch, self.best_mae = 0, float("inf")
        if resume:
            self._resume()
        self.net: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.step_loss = StepLoss(
            self.net,
            self.sparsity,
            cfg.loss_reduction,
            channels_last=self.channels_last,
            compile=cfg.compile,
            autocast=self.device.type if self.amp else None,
        )
        self.train_set = SaliencyDataset(cfg.data, cfg.size, augment=cfg.augment, skip_bad=True)
        self.val_set = self._val_set()
        self.metrics = MetricsLog(self.run_dir) if self.is_main else None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _build_model(self) -> nn.Module:
        if self.cfg.init:
            model = load_model(weights=self.cfg.init)
        else:
            model = registry.create_model(self.cfg.model)
            init_batchnorm(model, self.cfg.bn_init, self.cfg.seed)
        backbone = getattr(model, "backbone", None)
        pretrainable = hasattr(backbone, "load_pretrained")
        if self.cfg.backbone_weights:
            if not pretrainable:
                raise ConfigError(
                    f"backbone_weights: {registry.arch_of(model)} has no pretrained backbone"
                )
            backbone.load_pretrained(self.cfg.backbone_weights)
        elif pretrainable and not self.cfg.init and not self.cfg.from_scratch:
            raise ConfigError(
                f"{registry.arch_of(model)} trains from ImageNet backbone weights (the "
                "reference always loads them): give --backbone-weights FILE, or "
                "--from-scratch to train without them"
            )
        return model

    def _build_sparsity(self) -> SparsityPenalty | None:
        if self.cfg.sparsity != "none" and not isinstance(self.model, CSNet):
            raise ConfigError(
                f"--sparsity {self.cfg.sparsity} needs a CSNet, not "
                f"{registry.arch_of(self.model)}; turn it off with --sparsity none"
            )
        return build_sparsity(
            self.model,
            self.cfg.sparsity,
            dwd_coefficient=self.cfg.dwd_coefficient,
            dwd_expand=self.cfg.dwd_expand,
            l1_strength=self.cfg.l1_strength,
        )

    def _set_train_mode(self) -> None:
        """Train mode, but with ``frozen_bn`` every BatchNorm keeps its running stats."""
        self.model.train()
        if self.cfg.frozen_bn:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def _build_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the trainable parameters, in the recipe's weight-decay groups."""
        groups = optimizer_groups(
            self.model,
            self.cfg.sparsity,
            self.sparsity,
            self.cfg.weight_decay,
            self.cfg.gamma_weight_decay,
        )
        return torch.optim.Adam(groups, lr=self.cfg.lr, betas=self.cfg.betas)

    def _val_set(self) -> Subset | SaliencyDataset | None:
        if not self.cfg.val:
            return None
        val = SaliencyDataset(self.cfg.val, self.cfg.size, skip_bad=True)
        if self.cfg.val_limit:
            return Subset(val, range(min(self.cfg.val_limit, len(val))))
        return val

    def _resume(self) -> None:
        path = self.run_dir / "last.pt"
        payload = read_checkpoint(path)
        extra = payload.get("extra") or {}
        if "optimizer" not in extra:
            raise ValueError(f"{path}: checkpoint holds no training state to resume from")
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(extra["optimizer"])
        self.scaler.load_state_dict(extra["scaler"])
        self.start_epoch = int(extra["epoch"]) + 1
        self.best_mae = float(extra["best_mae"])
        log.info("resuming %s after epoch %d", self.run_dir, self.start_epoch - 1)

    def _loader(self, epoch: int) -> DataLoader:
        seed = self.cfg.seed * 100_003 + epoch
        if self.world > 1:
            sampler = DistributedSampler(self.train_set, shuffle=True, seed=self.cfg.seed)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(self.train_set, generator=torch.Generator().manual_seed(seed))
        np.random.seed((seed + 7919 * self.rank) % 2**32)
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=self.cfg.workers,
            worker_init_fn=_seed_worker,
            generator=torch.Generator().manual_seed(seed + 7919 * self.rank),
            drop_last=len(self.train_set) >= self.cfg.batch_size * self.world,
            pin_memory=self.device.type == "cuda",
            collate_fn=collate_skipping_bad,
        )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        if self.cfg.reset_optimizer and epoch in self.cfg.milestones:
            # The reference CSF solver builds a new Adam at its lr drop: moments reset.
            self.optimizer = self._build_optimizer()
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.cfg, epoch)
        loader = self._loader(epoch)
        totals = {"loss": 0.0, "bce": 0.0, "dwd": 0.0}
        window = dict.fromkeys(totals, 0.0)  # the micro-batches of one optimizer step
        steps, window_size = 0, 0
        step = epoch * -(-len(loader) // self.cfg.accumulate)  # global optimizer step
        bar = tqdm(loader, desc=f"epoch {epoch + 1}", disable=not self.is_main, leave=False)
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar):
            if batch is not None:  # None: every pair of this batch was unreadable (logged)
                x, y = (t.to(self.device, non_blocking=True) for t in batch)
                loss, bce, penalty = self.step_loss(x, y)
                self.scaler.scale(loss / self.cfg.accumulate).backward()
                values = {"loss": loss.item(), "bce": bce.item(), "dwd": penalty.item()}
                for key, value in values.items():
                    totals[key] += value
                    window[key] += value
                steps, window_size = steps + 1, window_size + 1
            boundary = (i + 1) % self.cfg.accumulate == 0 or i + 1 == len(loader)
            if boundary and window_size:
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                if self.metrics:
                    mean = {k: v / window_size for k, v in window.items()}
                    self.metrics.write_step(step, epoch + 1, mean)
                window, window_size = dict.fromkeys(totals, 0.0), 0
            bar.set_postfix(loss=f"{totals['loss'] / max(steps, 1):.4f}")
        return {f"train_{k}": v / max(steps, 1) for k, v in totals.items()}

    @torch.no_grad()
    def recalibrate_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the data in train mode with no parameter update: only the
        BatchNorm running statistics change (``bn_recalibrate``)."""
        self._set_train_mode()
        total, steps = 0.0, 0
        bar = tqdm(self._loader(epoch), desc=f"recalibrate {epoch + 1}", leave=False)
        for batch in bar:
            if batch is None:
                continue
            x, y = (t.to(self.device) for t in batch)
            total += float(bce_loss(self.net(x).float(), y, self.cfg.loss_reduction))
            steps += 1
        return {"train_loss": total / max(steps, 1), "train_bce": total / max(steps, 1)}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """MAE and max F-measure on the validation set, at the network's input size."""
        if self.val_set is None:
            return {}
        self.model.eval()
        mae = py_sod_metrics.MAE()
        fm = py_sod_metrics.FmeasureV2(  # the current API (Fmeasure is deprecated)
            metric_handlers={
                "f": py_sod_metrics.FmeasureHandler(
                    with_dynamic=True, with_adaptive=False, beta=0.3
                )
            }
        )
        batch = self.cfg.batch_size if self.cfg.size else 1  # native sizes do not stack
        loader = DataLoader(
            self.val_set, batch_size=batch, num_workers=0, collate_fn=collate_skipping_bad
        )
        for x, y in filter(None, loader):
            prob = torch.sigmoid(self.model(x.to(self.device)).float()).cpu().numpy()
            for p, g in zip(prob[:, 0], y[:, 0].numpy(), strict=True):
                pred, gt = (p * 255).astype(np.uint8), (g * 255).astype(np.uint8)
                mae.step(pred=pred, gt=gt)
                fm.step(pred=pred, gt=gt)
        self._set_train_mode()
        return {
            "val_mae": float(mae.get_results()["mae"]),
            "val_max_f": float(fm.get_results()["f"]["dynamic"].max()),
        }

    def _save(self, epoch: int, values: dict[str, float]) -> None:
        """``last.pt`` every epoch; ``best.pt`` when validation MAE (else train loss) improves."""
        extra = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "best_mae": self.best_mae,
            "train_config": {k: v for k, v in asdict(self.cfg).items() if v is not None},
        }
        meta = {"epoch": epoch + 1, **values}
        score = values.get("val_mae", values["train_loss"])
        improved = score < self.best_mae
        if improved:
            self.best_mae = extra["best_mae"] = score
        save_model(self.run_dir / "last.pt", self.model, metadata=meta, extra=extra)
        if improved:
            save_model(self.run_dir / "best.pt", self.model, metadata=meta)

    def fit(self) -> list[dict[str, float]]:
        """Train from ``start_epoch`` to ``cfg.epochs``; returns the per-epoch metrics."""
        history = []
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.metrics.truncate_after(self.start_epoch)
        for epoch in range(self.start_epoch, self.cfg.epochs):
            if self.cfg.bn_recalibrate:
                values = self.recalibrate_epoch(epoch)
            else:
                values = self.train_epoch(epoch)
                values["lr"] = lr_at(self.cfg, epoch)
            if self.is_main:
                values.update(self.validate())
                values["peak_rss_gb"] = peak_rss_bytes() / 1e9
                self.metrics.write(epoch + 1, values)
                self._save(epoch, values)
                log.info("epoch %d: %s", epoch + 1, values)
            history.append(values)
            if self.world > 1:
                dist.barrier()
        return history

    def close(self) -> None:
        if self.metrics:
            self.metrics.close()
        if self.sparsity:
            self.sparsity.remove()
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
