"""Small real checkpoints for the predict / export tests: a FERModule fitted for one step on random tensors."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from fer_ablation.data.labels import CLASSES
from fer_ablation.train.lit_module import FERModule


def save_checkpoint(path: Path, *, attention: str = "none", stem: str = "stride2", in_chans: int = 3,
                    image_size: int = 32, classes=CLASSES, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    spec = {"attention": attention, "stem": stem, "placement": {}, "in_chans": in_chans}
    module = FERModule(model_spec=spec, classes=list(classes), optimizer=partial(torch.optim.SGD, lr=1e-3))
    n = 4
    data = TensorDataset(torch.randn(n, in_chans, image_size, image_size), torch.arange(n) % len(classes),
                         torch.arange(n))
    trainer = L.Trainer(max_steps=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=str(path.parent))
    trainer.fit(module, DataLoader(data, batch_size=n))
    trainer.save_checkpoint(path)
    return path
