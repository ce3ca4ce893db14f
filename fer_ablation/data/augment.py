"""Batched augmentation and input normalisation on the batch's device.

Training augmentation (random crop with padding, horizontal flip, small rotation: the paper does not state its
augmentation, so these common FER choices are config values, conf/data/_common.yaml) is one affine warp
per image, sampled with ``F.affine_grid`` / ``F.grid_sample`` (bilinear, ``align_corners=False``). In normalised
coordinates (x, y) in [-1, 1] the warp maps each output pixel to the input location

    [x_in, y_in]^T = R(theta) · diag(s, 1) · [x_out, y_out]^T + 2 / S · [t_x, t_y]^T

with s = -1 for a flip (else 1), rotation angle theta ~ U(-rotation_degrees, rotation_degrees) and integer
shifts t ~ U{-crop_padding..crop_padding} pixels: exactly a ``crop_padding``-padded random crop (padding_mode
``zeros``, or ``reflect``: grid_sample's reflection about the border, which repeats the edge pixel, i.e.
numpy's / torchvision's "symmetric"). Without rotation the flip and shift land on pixel centres, so no
interpolation blur.
Parameters are drawn on the CPU from a seeded ``torch.Generator``: the same seed gives the same augmentation on
any device. Evaluation applies none of this.

Then: uint8 -> float in [0, 1]; stored grayscale (C=1) replicated to 3 channels when the model takes 3
(stored RGB is reduced to luma when it takes 1); per-channel normalisation ``(x - mean) / std`` (ImageNet by
default; for a 1-channel model the mean of the 3 means and of the 3 stds).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")
PADDING_MODES = {"zeros": "zeros", "zero": "zeros", "constant": "zeros", "reflect": "reflection",
                 "reflection": "reflection", "border": "border", "edge": "border"}


def affine_matrices(flip: torch.Tensor, shift: torch.Tensor, angle_deg: torch.Tensor, size: int) -> torch.Tensor:
    """theta [B, 2, 3] for ``F.affine_grid`` from flip (bool [B]), shift (pixels [B, 2] as x, y), angle (deg [B])."""
    a = torch.deg2rad(angle_deg.double())
    cos, sin = torch.cos(a), torch.sin(a)
    s = 1.0 - 2.0 * flip.double()
    theta = torch.zeros(len(flip), 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1] = cos * s, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * s, cos
    theta[:, :, 2] = shift.double() * (2.0 / size)
    return theta.float()


class BatchAugment:
    """Random flip + padded random crop (as a shift) + small rotation, one affine warp per image."""

    def __init__(self, *, crop_padding: int = 4, hflip: bool = True, rotation_degrees: float = 10.0,
                 padding_mode: str = "zeros", seed: int = 0):
        if str(padding_mode).lower() not in PADDING_MODES:
            raise ValueError(f"augment.padding_mode {padding_mode!r} is not one of {sorted(PADDING_MODES)}")
        self.crop_padding, self.hflip, self.rotation_degrees = int(crop_padding), bool(hflip), float(rotation_degrees)
        self.padding_mode = PADDING_MODES[str(padding_mode).lower()]
        self.generator = torch.Generator().manual_seed(int(seed))

    @property
    def is_identity(self) -> bool:
        return not self.hflip and self.crop_padding == 0 and self.rotation_degrees == 0

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw (flip [B] bool, shift [B, 2] pixels, angle [B] degrees) on the CPU."""
        g = self.generator
        flip = torch.rand(batch_size, generator=g) < 0.5
        if not self.hflip:
            flip = torch.zeros_like(flip)
        p = self.crop_padding
        shift = torch.randint(-p, p + 1, (batch_size, 2), generator=g).float()
        angle = (torch.rand(batch_size, generator=g) * 2.0 - 1.0) * self.rotation_degrees
        return flip, shift, angle

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Augment float images [B, C, S, S] (square) on their device."""
        if self.is_identity or len(images) == 0:
            return images
        flip, shift, angle = self.sample(len(images))
        theta = affine_matrices(flip, shift, angle, images.shape[-1])
        if images.is_cuda:  # from pinned memory the copy is queued without waiting for the GPU
            theta = theta.pin_memory()
        theta = theta.to(images.device, images.dtype, non_blocking=True)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)


def to_model_input(images: torch.Tensor, in_chans: int = 3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                   augment: BatchAugment | None = None) -> torch.Tensor:
    """uint8 [B, C_stored, S, S] -> normalised float32 [B, in_chans, S, S], augmented when ``augment`` is given."""
    x = images.float().div_(255.0)
    if augment is not None:
        x = augment(x)
    channels = x.shape[1]
    if in_chans == 3 and channels == 1:
        x = x.expand(-1, 3, -1, -1)
    elif in_chans == 1 and channels == 3:
        x = torch.einsum("bchw,c->bhw", x, _constant(LUMA, x.device, x.dtype)).unsqueeze(1)
    elif in_chans != channels:
        raise ValueError(f"cannot feed {channels}-channel images to a model with in_chans={in_chans}")
    mean, std = channel_normalization(in_chans, mean, std)
    if len(mean) != in_chans or len(std) != in_chans:
        raise ValueError(f"normalize mean/std need {in_chans} values, got {mean} / {std}")
    mean_t = _constant(tuple(mean), x.device, x.dtype).view(1, -1, 1, 1)
    std_t = _constant(tuple(std), x.device, x.dtype).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


def channel_normalization(in_chans: int, mean, std) -> tuple[list[float], list[float]]:
    """The mean and std applied to each of the model's ``in_chans`` channels: as given, or for a 1-channel model
    given 3 values (ImageNet's), the mean of the 3 means and of the 3 stds."""
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    if in_chans == 1 and len(mean) == 3:
        mean, std = [sum(mean) / 3], [sum(std) / 3]
    return mean, std


@functools.lru_cache(maxsize=32)
def _constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """`values` as a tensor on `device`, copied there once rather than with every batch (a host-to-device copy
    per step)."""
    return torch.tensor(values, dtype=dtype).to(device)
