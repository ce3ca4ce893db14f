"""torchvision's ImageNet ResNet50 weights, read from torch.hub's cache (never a silent download failure).

The file lives where torchvision itself caches it: ``torch.hub.get_dir()/checkpoints`` (that is
``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``), under the file
name of torchvision's weights URL (resnet50-0676ba61.pth for V1, resnet50-11ad3fa6.pth for V2).
"""

import http.client
import logging
import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights

logger = logging.getLogger("fer_ablation.models")

PRETRAINED = ("none", "imagenet", "imagenet_v1", "imagenet_v2")
_WEIGHTS = {
    "imagenet": ResNet50_Weights.IMAGENET1K_V1,
    "imagenet_v1": ResNet50_Weights.IMAGENET1K_V1,
    "imagenet_v2": ResNet50_Weights.IMAGENET1K_V2,
}


class PretrainedWeightsUnavailable(FileNotFoundError):
    """The ImageNet checkpoint is not in torch.hub's cache and could not be downloaded."""


def pretrained_choice(pretrained) -> str | None:
    """Normalise the ``pretrained`` value: None for no pretraining, else a key of ``_WEIGHTS``."""
    if pretrained is None or pretrained is False or pretrained == "none":
        return None
    if pretrained not in _WEIGHTS:
        raise ValueError(f"unknown pretrained {pretrained!r}; valid: {', '.join(PRETRAINED)} (or null)")
    return pretrained


def checkpoint_path(pretrained: str) -> Path:
    """Where torchvision caches the weights file for ``pretrained`` (honours TORCH_HOME at call time)."""
    url = _WEIGHTS[pretrained].url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def imagenet_state_dict(pretrained: str, download: bool = True) -> dict[str, torch.Tensor]:
    weights = _WEIGHTS[pretrained]
    path = checkpoint_path(pretrained)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    reason = "download=False"
    if download:
        try:
            return torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", weights_only=True)
        except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, refused connections
            reason = f"download failed: {err}"
    raise PretrainedWeightsUnavailable(
        f"ImageNet weights {pretrained!r} (torchvision ResNet50_Weights.{weights.name}) are not available "
        f"({reason}). Put the file {path.name} into the folder {path.parent} "
        f"(torch.hub.get_dir()/checkpoints; set TORCH_HOME to use another folder). "
        f"Get it on a machine with internet from {weights.url}."
    )


def load_imagenet(model: nn.Module, pretrained: str, in_chans: int = 3, download: bool = True) -> None:
    """Load torchvision's ImageNet ResNet50 weights into ``model``'s torchvision-named backbone.

    fc is not loaded (the head has num_classes outputs). in_chans=1: conv1's RGB filters are summed.
    Modules the checkpoint does not know (SC, attention) keep their initialisation and are listed in one
    log line, as are checkpoint tensors that have no place in the model (a conv2 that ACmix replaced).
    """
    state = imagenet_state_dict(pretrained, download=download)
    state = {key: value for key, value in state.items() if not key.startswith("fc.")}
    if in_chans == 1:
        state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)
    elif in_chans != 3:
        raise ValueError(f"ImageNet weights need in_chans 3 or 1 (summed RGB filters), got {in_chans}")
    own = model.state_dict()
    unused = sorted(key for key in state if key not in own)
    for key in unused:
        del state[key]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    new = [key for key in missing if not key.startswith("fc.")]
    logger.info(
        "loaded %d ImageNet tensors (%s) from %s; fc left freshly initialised; newly initialised (not in the "
        "checkpoint): %s; checkpoint tensors with no place in this model: %s",
        len(state),
        pretrained,
        checkpoint_path(pretrained),
        ", ".join(new) or "none",
        ", ".join(unused) or "none",
    )
