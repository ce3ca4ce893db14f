"""The in-memory path (tensor cache, device batches, sharding), its agreement with the DataLoader path, and the
batched augmentation / normalisation."""

import os
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from fer_ablation.data import build_datamodule
from fer_ablation.data import memory
from fer_ablation.data.augment import BatchAugment, affine_matrices, to_model_input
from fer_ablation.data.decode import decode_file
from fer_ablation.data.memory import EpochShuffle, MemoryLoader, eval_shard, train_batch_count, train_shard

pytestmark = pytest.mark.filterwarnings("ignore:.*has no images of class")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_ABLATION_CACHE", str(tmp_path / "cache"))


def make_folder(root, counts=(9, 7, 5, 6), size=(14, 11)):
    rng = np.random.default_rng(0)
    names = ["angry", "happy", "sad", "neutral"]
    from PIL import Image

    for name, n in zip(names, counts):
        for i in range(n):
            path = Path(root) / "train" / name / f"{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)).save(path)
        for i in range(2):
            path = Path(root) / "val" / name / f"{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)).save(path)


def dm_for(root, **kw):
    cfg = {"name": "imagefolder", "root": str(root), "image_size": 12, "batch_size": 5, "eval_batch_size": 3, **kw}
    dm = build_datamodule(cfg, in_chans=3, seed=1)
    dm.setup("fit")
    return dm


def epoch_stats(loader):
    images, targets, indices = zip(*loader)
    images = torch.cat(images).double()
    return images.mean().item(), images.std().item(), torch.cat(targets), torch.cat(indices)


def test_memory_and_dataloader_paths_agree(tmp_path):
    make_folder(tmp_path)
    mem, files = dm_for(tmp_path, in_memory=True), dm_for(tmp_path, in_memory=False)
    assert isinstance(mem.train_dataloader(), MemoryLoader)
    assert isinstance(files.train_dataloader(), torch.utils.data.DataLoader)
    assert mem.split_paths("train") == files.split_paths("train")
    for split, loader in (("train", "train_dataloader"), ("val", "val_dataloader")):
        m, f = getattr(mem, loader)(), getattr(files, loader)()
        assert len(m) == len(f)
        m_mean, m_std, m_targets, m_idx = epoch_stats(m)
        f_mean, f_std, f_targets, f_idx = epoch_stats(f)
        assert m_mean == pytest.approx(f_mean, rel=1e-12) and m_std == pytest.approx(f_std, rel=1e-12)
        assert torch.equal(torch.bincount(m_targets, minlength=7), torch.bincount(f_targets, minlength=7))
        assert sorted(m_idx.tolist()) == sorted(f_idx.tolist()) == list(range(len(mem.split_paths(split))))
    # every batch row is the decoded file of its index, with its target
    for images, targets, indices in mem.train_dataloader():
        assert images.dtype == torch.uint8 and targets.dtype == indices.dtype == torch.int64
        for img, t, i in zip(images, targets, indices):
            assert np.array_equal(img.numpy(), decode_file(mem.split_paths("train")[i], 12, True))
            assert t == mem.split_targets("train")[i]


def test_cache_reused_and_invalidated(tmp_path, monkeypatch):
    make_folder(tmp_path)
    first = dm_for(tmp_path)
    assert first.describe()["cache_reused"] == {"train": False, "val": False}
    tensors = sorted(p.name for p in (tmp_path / "cache" / "tensors").iterdir())
    assert len(tensors) == 4 and all(n.endswith((".npy", ".json")) for n in tensors)  # atomic: no tmp files left
    expected = first.train_dataloader().images.clone()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(memory, "decode_samples", no_decoding)
    second = dm_for(tmp_path)
    assert second.describe()["cache_reused"] == {"train": True, "val": True}
    assert torch.equal(second.train_dataloader().images, expected)
    monkeypatch.undo()
    monkeypatch.setenv("FER_ABLATION_CACHE", str(tmp_path / "cache"))

    changed = Path(second.split_paths("train")[0])
    from PIL import Image

    Image.new("L", (14, 11), 7).save(changed)
    os.utime(changed, ns=(1_000_000_000, 1_000_000_000))
    third = dm_for(tmp_path)
    assert third.describe()["cache_reused"] == {"train": False, "val": True}
    row = third.split_paths("train").index(str(changed))
    assert (third.train_dataloader().images[row] == 7).all()
    # the image size is part of the key
    assert dm_for(tmp_path, image_size=10).describe()["cache_reused"] == {"train": False, "val": False}


def test_cache_not_reused_when_decoding_changes(tmp_path, monkeypatch):
    from fer_ablation.data import decode

    make_folder(tmp_path)
    dm_for(tmp_path)
    monkeypatch.setattr(decode, "DECODE_VERSION", decode.DECODE_VERSION + 1)
    assert dm_for(tmp_path).describe()["cache_reused"] == {"train": False, "val": False}


def test_cache_key_of_a_non_utf8_path(tmp_path):
    from fer_ablation.data.folders import Samples

    name = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png")
    other = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe8.png")
    key = memory.cache_key({}, Samples([name], [0]))
    assert key != memory.cache_key({}, Samples([other], [0])) and key == memory.cache_key({}, Samples([name], [0]))


def test_dataloader_path_checks_files_once(tmp_path, monkeypatch):
    make_folder(tmp_path)
    dm_for(tmp_path, in_memory=False)
    assert not (tmp_path / "cache" / "tensors").exists()
    assert len(list((tmp_path / "cache" / "checks").glob("*.json"))) == 2
    monkeypatch.setattr(memory, "decode_samples", lambda *a, **k: pytest.fail("decoded again"))
    assert dm_for(tmp_path, in_memory=False).describe()["cache_reused"] == {"train": True, "val": True}


def test_in_memory_auto_threshold(tmp_path, monkeypatch):
    make_folder(tmp_path)
    assert dm_for(tmp_path).in_memory
    monkeypatch.setattr("fer_ablation.data.datamodule.MEMORY_LIMIT_BYTES", 35 * 12 * 12)  # 43 images won't fit
    assert not dm_for(tmp_path).in_memory


@pytest.mark.parametrize("n", [20, 21, 23])
def test_sharding_two_ranks(n):
    perm = EpochShuffle(seed=5).permutation(n)
    shards = [train_shard(perm, r, 2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == n // 2
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    evals = [eval_shard(n, r, 2) for r in range(2)]
    assert sorted(torch.cat(evals).tolist()) == list(range(n))  # complete cover, no padding, no duplicates

    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    targets = torch.arange(n) % 7
    loaders = [MemoryLoader(images, targets, 3, shuffle=True, seed=2, rank=r, world_size=2) for r in range(2)]
    assert len(loaders[0]) == len(loaders[1]) == train_batch_count(n // 2, 3)
    seen = [torch.cat([idx for _, _, idx in loader]).tolist() for loader in loaders]
    assert len(seen[0]) == len(seen[1]) and not set(seen[0]) & set(seen[1])
    for rank_loader in loaders:
        for batch_images, batch_targets, idx in rank_loader:
            assert torch.equal(batch_images[:, 0, 0, 0].long(), idx) and torch.equal(batch_targets, idx % 7)
    vals = [MemoryLoader(images, targets, 4, rank=r, world_size=2) for r in range(2)]
    val_seen = [i for loader in vals for _, _, idx in loader for i in idx.tolist()]
    assert sorted(val_seen) == list(range(n))


def test_train_batches_and_epoch_shuffle():
    assert [train_batch_count(n, 4) for n in (1, 4, 5, 6, 9, 10)] == [1, 1, 1, 2, 2, 3]  # last batch of 1 dropped
    n = 30
    images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    loader = MemoryLoader(images, torch.zeros(n, dtype=torch.long), 8, shuffle=True, seed=3)
    epochs = [torch.cat([idx for _, _, idx in loader]) for _ in range(2)]
    assert sorted(epochs[0].tolist()) == sorted(epochs[1].tolist()) == list(range(n))
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled each epoch
    again = MemoryLoader(images, torch.zeros(n, dtype=torch.long), 8, shuffle=True, seed=3)
    again.sampler.set_epoch(1)  # what Lightning calls at the start of epoch 1
    assert torch.equal(torch.cat([idx for _, _, idx in again]), epochs[1])


def test_lightning_fit_uses_device_transform_and_set_epoch(tmp_path):
    make_folder(tmp_path)
    dm = build_datamodule({"name": "imagefolder", "root": str(tmp_path), "image_size": 12, "batch_size": 8},
                          in_chans=3, seed=0)

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3 * 12 * 12, 7)
            self.train_orders, self.val_inputs = [], []

        def training_step(self, batch, batch_idx):
            x, y, idx = batch
            assert x.dtype == torch.float32 and x.shape[1:] == (3, 12, 12)
            if batch_idx == 0:
                self.train_orders.append(idx.tolist())
            return torch.nn.functional.cross_entropy(self.layer(x.flatten(1)), y)

        def validation_step(self, batch, batch_idx):
            self.val_inputs.append(batch)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    probe = Probe()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(probe, datamodule=dm)
    assert probe.train_orders[0] != probe.train_orders[1]
    x, y, idx = probe.val_inputs[0]  # validation: normalised, not augmented
    expected = to_model_input(dm._tensors("val")[0][idx], 3)
    assert torch.equal(x, expected)


# ---------------------------------------------------------------- augmentation and normalisation
def reference_normalise(images_uint8, mean, std):
    x = images_uint8.double() / 255.0
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    mean = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    return (x - mean) / torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)


def test_eval_is_normalisation_only():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 1, 10, 10), dtype=torch.uint8, generator=g)
    dm = build_datamodule({"name": "synthetic", "normalize": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}})
    x, _, _ = dm.device_transform((images, torch.zeros(4, dtype=torch.long), torch.arange(4)), train=False)
    assert x.dtype == torch.float32 and x.shape == (4, 3, 10, 10)
    torch.testing.assert_close(x.double(), reference_normalise(images, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]),
                               atol=1e-6, rtol=1e-6)
    x_train, _, _ = dm.device_transform((images, torch.zeros(4, dtype=torch.long), torch.arange(4)), train=True)
    assert not torch.equal(x_train, x)
    x_again, _, _ = dm.device_transform((images, torch.zeros(4, dtype=torch.long), torch.arange(4)), train=False)
    assert torch.equal(x_again, x)


def test_channel_handling():
    gray = torch.full((2, 1, 4, 4), 51, dtype=torch.uint8)
    one = to_model_input(gray, 1)
    torch.testing.assert_close(one, torch.full((2, 1, 4, 4), (0.2 - 0.449) / 0.226))  # mean of ImageNet stats
    rgb = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    rgb[:, 0] = 255
    torch.testing.assert_close(to_model_input(rgb, 1, mean=[0.0], std=[1.0]), torch.full((1, 1, 2, 2), 0.299))


def test_augmentation_deterministic_per_seed():
    images = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    a, b, c = (BatchAugment(seed=s)(images) for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    aug = BatchAugment(seed=7)
    assert not torch.equal(aug(images), aug(images))  # the generator advances between batches


def test_flip_and_shift_are_exact_padded_crops():
    images = torch.rand(16, 2, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).float()
    # grid_sample's reflection mirrors about the image border, repeating the edge pixel: numpy's "symmetric"
    for mode, np_mode in (("zeros", "constant"), ("reflect", "symmetric")):
        aug = BatchAugment(crop_padding=3, hflip=True, rotation_degrees=0, padding_mode=mode, seed=4)
        flip, shift, _ = BatchAugment(crop_padding=3, hflip=True, rotation_degrees=0, seed=4).sample(16)
        out = aug(images)
        p = 3
        for k in range(16):
            # out(x) = in(s * x + t): the crop of the padded image at (p + dy, p + dx), then flipped when s = -1
            padded = np.pad(images[k].numpy(), ((0, 0), (p, p), (p, p)), mode=np_mode)
            dx, dy = int(shift[k, 0]), int(shift[k, 1])
            ref = padded[:, p + dy:p + dy + 9, p + dx:p + dx + 9]
            ref = ref[:, :, ::-1] if flip[k] else ref
            np.testing.assert_allclose(out[k].numpy(), ref, atol=1e-5)
        assert flip.any() and not flip.all() and (shift != 0).any()


def test_rotation_direction_and_matrix():
    # a 90-degree rotation of a square image maps pixel centres onto pixel centres: compare with rot90
    theta = affine_matrices(torch.tensor([False, True]), torch.zeros(2, 2), torch.tensor([90.0, 0.0]), 5)
    torch.testing.assert_close(theta[0], torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(theta[1], torch.tensor([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    image = torch.arange(25.0).view(1, 1, 5, 5)
    grid = torch.nn.functional.affine_grid(theta[:1], [1, 1, 5, 5], align_corners=False)
    out = torch.nn.functional.grid_sample(image, grid, align_corners=False)
    torch.testing.assert_close(out, torch.rot90(image, 1, dims=(-2, -1)))
    aug = BatchAugment(crop_padding=0, hflip=False, rotation_degrees=10, seed=0)
    _, _, angles = aug.sample(1000)
    assert angles.abs().max() <= 10 and angles.min() < -9 and angles.max() > 9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmentation_same_on_gpu():
    images = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    cpu = BatchAugment(seed=3)(images)
    gpu = BatchAugment(seed=3)(images.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_memory_loader_batches_stay_on_gpu():
    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8).cuda()
    loader = MemoryLoader(images, torch.arange(10) % 7, 4, shuffle=True, seed=0)
    batches = list(loader)
    assert all(b.device.type == "cuda" for batch in batches for b in batch)
    assert sorted(torch.cat([idx for _, _, idx in batches]).tolist()) == list(range(10))
    x = to_model_input(batches[0][0], 3, augment=BatchAugment(seed=0))
    assert x.device.type == "cuda" and x.shape == (4, 3, 8, 8)
