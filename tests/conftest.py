import os

import pytest
# Fast, quiet defaults for every test: W&B disabled unless a test turns it on.
SMOKE = ["debug=smoke", "logger=csv", "trainer=cpu", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """One probe-set cache for the session (generated once), W&B off, no network lookups."""
    cache = tmp_path_factory.mktemp("cache")
    saved = {k: os.environ.get(k) for k in ("FER_ABLATION_CACHE", "WANDB_MODE", "WANDB_SILENT")}
    os.environ.update(FER_ABLATION_CACHE=str(cache), WANDB_MODE="disabled", WANDB_SILENT="true")
    yield cache
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for in-process model work: on 2 shared cores, two spinning OpenMP
    threads per process are many times slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def compose_cfg():
    """Compose the run config as `python -m fer_ablation.run` would, smoke-sized."""

    def _compose(*overrides: str, config_name: str = "config", smoke: bool = True):
        from fer_ablation.config import compose

        return compose([*(SMOKE if smoke else []), *overrides], config_name)

    return _compose
