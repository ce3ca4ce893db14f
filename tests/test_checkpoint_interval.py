"""last.ckpt every checkpoint_every_n_epochs epochs (issue #22: 283 MB per epoch is slow on a GPU)."""

import pytest
import torch

from fer_ablation.train.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_last_checkpoint_is_written_every_n_epochs_and_resumes_from_there(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.max_epochs=3", "trainer.limit_train_batches=1", "checkpoint_every_n_epochs=2")
    train(cfg, tmp_path)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", mmap=True, weights_only=True)
    assert state["epoch"] == 1  # after epoch 2; epoch 3 is not a multiple of 2, so a crash there loses 1 epoch


def test_checkpoint_interval_below_one_is_refused(compose_cfg, tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every_n_epochs=0"):
        train(compose_cfg("checkpoint_every_n_epochs=0"), tmp_path)
