"""A small LightningModule on scikit-learn's digits (bundled, no download), for the Lightning
tests and their torchrun worker."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from disciplined.tasks import digits_datasets


class DigitsModule(pl.LightningModule):
    """An MLP with SGD; `scheduler` makes configure_optimizers return a StepLR too, `body_lr`
    puts the first layer in a group of its own at that fraction of the LR."""

    def __init__(self, lr: float = 0.05, scheduler: bool = False,
                 body_lr: float | None = None, adam: bool = False) -> None:
        super().__init__()
        self.lr, self.scheduler, self.body_lr, self.adam = lr, scheduler, body_lr, adam
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)
        self.seen_lr: list[list[float]] = []
        self.seen_momentum: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        group = self.trainer.optimizers[0].param_groups[0]
        self.seen_lr.append([g["lr"] for g in self.trainer.optimizers[0].param_groups])
        self.seen_momentum.append(group["betas"][0] if "betas" in group else group["momentum"])
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> object:
        if self.body_lr is None:
            params: object = self.parameters()
        else:
            params = [{"params": self.body.parameters(), "lr": self.lr * self.body_lr},
                      {"params": self.head.parameters()}]
        opt = (torch.optim.AdamW(params, lr=self.lr) if self.adam  # type: ignore[arg-type]
               else torch.optim.SGD(params, lr=self.lr, momentum=0.9))  # type: ignore[arg-type]
        if self.scheduler:
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, 1)]
        return opt


class DigitsData(pl.LightningDataModule):
    def __init__(self, batch_size: int = 64) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.train, self.val = digits_datasets()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=256)
