"""The LightningModule: cross-entropy training and whole-split evaluation with torchmetrics.

Evaluation metrics are computed once per epoch over every sample of the split (never a mean of
batch values). Under DDP each rank's logits are gathered and de-duplicated by sample index, so a
distributed sampler's padding can neither duplicate nor drop a sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from fer_ablation.models import build_model


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite: the run stops instead of training on garbage."""


class NonFiniteOutputError(FloatingPointError):
    """The model gave NaN or infinite outputs on an evaluation split: the split is not scored."""


@dataclass
class Evaluation:
    """One split scored by one model: the raw material of metrics.json and predictions.csv."""

    split: str
    indices: torch.Tensor  # [N] sample indices, sorted
    targets: torch.Tensor  # [N]
    probs: torch.Tensor  # [N, K] softmax probabilities (float32)
    loss: float
    metrics: dict


def score(probs: torch.Tensor, targets: torch.Tensor, classes: Sequence[str], loss: float) -> dict:
    """Whole-split metrics as fractions: overall (micro) accuracy, macro P/R/F1, per-class F1.

    ``*_macro`` average over every class of the model; ``*_macro_present`` over the classes the split has
    images of (``classes_present``). They differ when a split lacks a class (a 6-class evaluation set
    scored by a 7-class model) and the model predicts the absent class: that class then counts with F1 0 in the
    all-class average. torchmetrics gives a class with tp + fp + fn = 0 (absent and never predicted) zero weight,
    so the two averages are equal when the model never predicts the absent class.
    """
    k = len(classes)
    preds = probs.argmax(dim=1)
    per_class_f1 = multiclass_f1_score(preds, targets, num_classes=k, average=None)
    present = torch.bincount(targets, minlength=k)[:k] > 0
    per_class = {"precision": multiclass_precision(preds, targets, num_classes=k, average=None),
                 "recall": multiclass_recall(preds, targets, num_classes=k, average=None), "f1": per_class_f1}
    present_macro = {f"{name}_macro_present": values[present].mean().item() if present.any() else float("nan")
                     for name, values in per_class.items()}
    return {
        "accuracy": multiclass_accuracy(preds, targets, num_classes=k, average="micro").item(),
        "precision_macro": multiclass_precision(preds, targets, num_classes=k, average="macro").item(),
        "recall_macro": multiclass_recall(preds, targets, num_classes=k, average="macro").item(),
        "f1_macro": multiclass_f1_score(preds, targets, num_classes=k, average="macro").item(),
        "per_class_f1": {name: per_class_f1[i].item() for i, name in enumerate(classes)},
        "confusion_matrix": multiclass_confusion_matrix(preds, targets, num_classes=k).tolist(),
        "classes_present": [name for i, name in enumerate(classes) if present[i]],
        **present_macro,
        "loss": loss,
        "n": int(targets.numel()),
    }


class FERModule(L.LightningModule):
    def __init__(
        self,
        model_spec: dict,
        classes: Sequence[str],
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        scheduler_interval: str = "epoch",
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | None = None,
        channels_last: bool = False,
        pretrained: str | None = None,
        preprocessing: dict | None = None,
    ):
        """`scheduler_interval`: "epoch" steps the scheduler once an epoch; "step" once a batch, and the
        scheduler is built with `total_steps` (the run's optimizer steps), as one-cycle needs.
        `preprocessing`: what inputs the model was trained on ({image_size, in_chans, grayscale,
        normalize: {mean, std}}), kept in the checkpoint so evaluation and inference feed it the same."""
        super().__init__()
        # pretrained is not a hyper-parameter: a checkpoint carries its own weights.
        self.save_hyperparameters("model_spec", "classes", "preprocessing")
        self.classes = list(classes)
        self.model = build_model(num_classes=len(self.classes), pretrained=pretrained, **model_spec)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler interval {scheduler_interval!r}: expected 'epoch' or 'step'")
        self.scheduler_interval = scheduler_interval
        self.label_smoothing = label_smoothing
        self.register_buffer(
            "class_weights",
            torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None,
            persistent=False,
        )
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.evaluations: dict[str, Evaluation] = {}
        self.loaded_epoch: int | None = None  # the 0-based epoch of the last checkpoint loaded
        self.fit_val_epoch: int | None = None  # the 0-based epoch whose in-loop validation `evaluations["val"]` holds
        self._eval_outputs: dict[str, list] = {}
        self._train_sums = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, seen
        self._nonfinite = torch.tensor([-1.0, 0.0], dtype=torch.float64)  # first non-finite loss: batch, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.loaded_epoch = checkpoint.get("epoch")

    # training -------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._train_sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        self._nonfinite = torch.tensor([-1.0, 0.0], dtype=torch.float64, device=self.device)  # batch, loss

    def training_step(self, batch, batch_idx):
        x, y, _ = batch
        logits = self(x)
        loss = F.cross_entropy(
            logits.float(), y, weight=self.class_weights, label_smoothing=self.label_smoothing
        )
        with torch.no_grad():
            # recorded on the device, checked once per epoch: reading it here would wait for the GPU every step
            first = ~torch.isfinite(loss) & (self._nonfinite[0] < 0)
            found = torch.stack([torch.full_like(self._nonfinite[0], batch_idx), loss.detach().double()])
            self._nonfinite = torch.where(first, found, self._nonfinite)
            self._train_sums += torch.stack(
                [loss.detach().double() * y.numel(), (logits.argmax(1) == y).sum().double(),
                 torch.full((), y.numel(), device=y.device, dtype=torch.float64)]
            )
        return loss

    def _check_training_loss(self) -> None:
        """Fail on the epoch's first non-finite training loss, before the epoch's weights are evaluated or saved."""
        batch, loss = self._nonfinite.tolist()
        if batch >= 0:
            raise NonFiniteLossError(
                f"training loss is {loss} at epoch {self.current_epoch}, batch {int(batch)}: "
                "stopping this run (lower the learning rate or check the data)"
            )

    def train_epoch_summary(self) -> dict:
        """Mean loss and accuracy over every training sample of the epoch, all ranks."""
        sums = self.trainer.strategy.reduce(self._train_sums, reduce_op="sum")
        seen = max(sums[2].item(), 1.0)
        return {"loss": sums[0].item() / seen, "accuracy": sums[1].item() / seen}

    def on_train_epoch_end(self) -> None:
        self._check_training_loss()
        for key, value in self.train_epoch_summary().items():
            self.log(f"train/{key}", value, rank_zero_only=True)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        if self.scheduler_interval == "step":
            steps = max(1, int(self.trainer.estimated_stepping_batches))
            try:
                scheduler = self.scheduler_factory(optimizer=optimizer, total_steps=steps)
            except ZeroDivisionError:
                # OneCycleLR's warm-up phase has zero length when pct_start x total_steps = 1 (4 steps at 0.25, a
                # smoke budget): one step more than the run takes keeps every phase non-empty
                scheduler = self.scheduler_factory(optimizer=optimizer, total_steps=steps + 1)
        else:
            scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    # evaluation -----------------------------------------------------------------------------
    def _eval_step(self, batch, split: str) -> None:
        x, y, idx = batch
        logits = self(x).float()
        loss = F.cross_entropy(logits, y, reduction="none")
        self._eval_outputs.setdefault(split, []).append(
            (idx.detach(), y.detach(), logits.detach(), loss.detach())
        )

    def _eval_epoch_end(self, split: str) -> None:
        outputs = self._eval_outputs.pop(split, [])
        if not outputs:
            return
        idx, y, logits, loss = (torch.cat(parts) for parts in zip(*outputs))
        idx, y, logits, loss = self._gather_unique(idx, y, logits, loss)
        bad = int((~torch.isfinite(logits).all(dim=1)).sum())
        if bad:
            raise NonFiniteOutputError(
                f"{bad} of {logits.shape[0]} {split} samples got non-finite (NaN/inf) outputs at epoch "
                f"{self.current_epoch}: the split is not scored (check the image size, the inputs and the "
                "learning rate)"
            )
        probs = logits.softmax(dim=1).cpu()
        mean_loss = loss.mean().item()
        metrics = score(probs, y.cpu(), self.classes, mean_loss)
        self.evaluations[split] = Evaluation(split, idx.cpu(), y.cpu(), probs, mean_loss, metrics)
        self.fit_val_epoch = self.current_epoch if self.trainer.state.fn == "fit" else None
        if self.trainer.state.fn == "fit":
            for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "loss"):
                self.log(f"{split}/{key}", metrics[key], rank_zero_only=True)

    def _gather_unique(self, idx, y, logits, loss):
        """All ranks' samples, each once, sorted by index (DDP samplers pad with repeats)."""
        if self.trainer.world_size > 1:
            n = torch.tensor([idx.numel()], device=idx.device)
            longest = int(self.all_gather(n).max())
            pad = longest - idx.numel()
            idx = F.pad(idx, (0, pad), value=-1)
            y = F.pad(y, (0, pad))
            logits = F.pad(logits, (0, 0, 0, pad))
            loss = F.pad(loss, (0, pad))
            idx, y, logits, loss = (
                t.flatten(0, 1) for t in self.all_gather((idx, y, logits, loss))
            )
            keep = idx >= 0
            idx, y, logits, loss = idx[keep], y[keep], logits[keep], loss[keep]
        order = torch.argsort(idx, stable=True)
        idx, y, logits, loss = idx[order], y[order], logits[order], loss[order]
        first = torch.ones_like(idx, dtype=torch.bool)
        first[1:] = idx[1:] != idx[:-1]
        return idx[first], y[first], logits[first], loss[first]

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def on_validation_epoch_start(self) -> None:
        if self.trainer.state.fn == "fit":  # Lightning validates before on_train_epoch_end
            self._check_training_loss()

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")
