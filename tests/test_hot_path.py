"""No host-device synchronisation in a training step (issue #22): nothing read back to Python, no tensor made from
Python data, so a GPU step is queued without waiting. On the CPU these are the ops that would sync on CUDA."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fer_ablation.data.augment import BatchAugment, to_model_input
from fer_ablation.train.lit_module import FERModule
from fer_ablation.train.training import model_spec

pytestmark = pytest.mark.usefixtures("one_thread")
# _local_scalar_dense: .item(), bool(), float() of a tensor; lift_fresh: torch.tensor(...) from Python data
SYNCING = {"aten._local_scalar_dense", "aten.lift_fresh", "aten.lift_fresh_copy", "aten.nonzero"}


class SyncFinder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.found = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func.overloadpacket) in SYNCING:
            self.found.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


@pytest.fixture
def module(compose_cfg):
    import hydra

    cfg = compose_cfg()
    module = FERModule(model_spec=model_spec(cfg), classes=list("abcdefg"),
                       optimizer=hydra.utils.instantiate(cfg.optimizer), scheduler=None, label_smoothing=0.0,
                       class_weights=None, channels_last=True, preprocessing={})
    module.on_train_epoch_start()
    return module


def _step(module, images, batch_idx, augment):
    x = to_model_input(images, augment=augment)
    y = torch.arange(len(images)) % 7
    return module.training_step((x, y, torch.arange(len(images))), batch_idx)


def test_a_training_step_reads_nothing_back(module):
    augment = BatchAugment(seed=0)
    images = torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8)
    _step(module, images, 0, augment)  # first call: constants are copied to the device once
    with SyncFinder() as finder:
        _step(module, images, 1, augment).backward()
    assert finder.found == []


def test_a_nonfinite_loss_still_stops_the_epoch_naming_its_batch(module):
    module.model.fc.bias.data.fill_(float("nan"))
    images = torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8)
    _step(module, images, 3, None)
    _step(module, images, 4, None)
    with pytest.raises(FloatingPointError, match="training loss is nan at epoch 0, batch 3"):
        module._check_training_loss()
