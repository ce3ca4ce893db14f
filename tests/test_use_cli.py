"""The predict and export commands start: Hydra composes their configs from the command line."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module, args", [("predict", ["inputs=photos/", "face_crop=haar"]),
                                          ("export", ["format=onnx"])])
def test_command_composes_its_config(module, args):
    done = subprocess.run([sys.executable, "-m", f"fer_ablation.{module}", "ckpt_path=best.ckpt", *args,
                           "--cfg", "job"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ckpt_path: best.ckpt" in done.stdout and args[-1].replace("=", ": ") in done.stdout
