"""Atomic file writes: a temporary file in the target folder, renamed into place when complete."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Union

__all__ = ["atomic_write"]


def atomic_write(path: Union[str, os.PathLike], write: Callable[[str], Any], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it to ``path``.

    A failure or Ctrl-C inside ``write`` removes the temporary file and leaves any old ``path``
    as it was: nothing is ever half-written.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
