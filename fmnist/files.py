"""Files that are whole or absent: one way to write them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic(path: Path, mode: str = "wb") -> Iterator[IO]:
    """A file to write `path` through: a temporary file beside it (same folder, so the rename
    is atomic) that takes `path`'s place only when the `with` block ends without an error.
    A process killed mid-write, or a block that raises (a download that does not verify),
    leaves the old `path` untouched and no temporary file behind."""
    fd, part = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        with open(part, mode) as f:  # f.name is the temporary file's path
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    finally:
        Path(part).unlink(missing_ok=True)
