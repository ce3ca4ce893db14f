"""Atomic file writes: a reader sees the old file or the whole new one, never half a file.

The run records (:mod:`fer_ablation.records`), the decoded-image cache (:mod:`fer_ablation.data.memory`) and every
command that writes a result file write through here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_file(path: Path | str) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces `path` only when the block ends without error.

    The data goes to a temporary file in the same folder, is flushed to disk, then renamed over `path`
    (``os.replace``, atomic on POSIX and Windows), so readers see the old file or the whole new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; a record gets the mode open() would give it (0666 & ~umask),
        # so group members on shared cluster storage can read it.
        os.chmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read the umask is to set it
    os.umask(mask)
    return mask


def write_atomic(path: Path | str, text: str) -> None:
    """Write `text` (UTF-8, newlines as given) to `path` atomically; see :func:`atomic_file`."""
    with atomic_file(path) as handle:
        handle.write(text.encode("utf-8"))
