"""Every `python -m fer_ablation.<x>` that the README, ARCHITECTURE.md or docs/ name exists and answers --help."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = re.compile(r"python -m (fer_ablation(?:\.[A-Za-z_]\w*)*)")


def named_commands() -> dict[str, set[str]]:
    """module -> the documents that name it."""
    documents = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").rglob("*.md"))]
    named: dict[str, set[str]] = {}
    for path in documents:
        if path.is_file():
            for module in COMMAND.findall(path.read_text()):
                named.setdefault(module, set()).add(path.name)
    return named


def test_every_named_command_answers_help():
    named = named_commands()
    assert {"fer_ablation.run", "fer_ablation.collect", "fer_ablation.evaluate"} <= set(named)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # All at once: each start is mostly importing torch.
    running = {module: subprocess.Popen([sys.executable, "-m", module, "--help"], cwd=ROOT, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for module in sorted(named)}
    failures = []
    for module, process in running.items():
        output, _ = process.communicate(timeout=300)
        # argparse prints "usage:", Hydra's --help "<app> is powered by Hydra."
        if process.returncode != 0 or not ("usage:" in output or "powered by Hydra" in output):
            failures.append(f"python -m {module} --help (named in {', '.join(sorted(named[module]))}) exited "
                            f"{process.returncode}:\n{output[-1500:]}")
    assert not failures, "\n\n".join(failures)
