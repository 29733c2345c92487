"""Reader for IDX files, the format of MNIST and Fashion-MNIST (gzipped or not).

Format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic ``0 0 T n`` (``T`` the element
type, ``n`` the number of dimensions), then ``n`` big-endian uint32 sizes, then the elements,
big-endian, in C order. A file ending in ``.gz`` is decompressed on the fly.

Where the data lives is up to the user (``--data DIR``): the four files
``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` of MNIST or Fashion-MNIST in one folder,
e.g. the files of Debian's ``dataset-fashion-mnist`` package or of the upstream releases.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Tuple, Union

import numpy as np

from ._validate import option

__all__ = ["load_mnist", "read_idx"]

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SPLITS = {"train": "train", "test": "t10k"}

PathLike = Union[str, os.PathLike]


def read_idx(path: PathLike) -> np.ndarray:
    """The array stored in one IDX file (``.gz`` files are decompressed).

    Parameters
    ----------
    path : str or path
        The file.

    Returns
    -------
    numpy.ndarray
        In native byte order, of the file's element type and shape.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "a-idx2-ubyte")
    >>> _ = open(f, "wb").write(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    >>> read_idx(f)
    array([[1, 2, 3],
           [4, 5, 6]], dtype=uint8)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex() or 'none'})")
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        raise ValueError(f"{path} has unknown IDX element type 0x{code:02x}; valid: "
                         + ", ".join(f"0x{c:02x}" for c in _TYPES))
    head = 4 + 4 * ndim
    if len(data) < head:
        raise ValueError(f"{path} is truncated: its header names {ndim} dimensions")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", ndim, 4))
    dtype = np.dtype(_TYPES[code])
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) - head != count * dtype.itemsize:
        raise ValueError(f"{path} holds {len(data) - head} bytes of data but its header "
                         f"{shape} needs {count * dtype.itemsize}")
    arr = np.frombuffer(data, dtype, count, head).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"no {stem} or {stem}.gz in {root}")


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package puts Fashion-MNIST's IDX files."""


def load_mnist(root: PathLike, split: str = "train") -> Tuple[np.ndarray, np.ndarray]:
    """Images and labels of MNIST-format data (MNIST, Fashion-MNIST) in one folder.

    Parameters
    ----------
    root : str or path
        Folder with ``{train,t10k}-images-idx3-ubyte[.gz]`` and ``...-labels-idx1-ubyte[.gz]``.
    split : {'train', 'test'}
        Which pair of files.

    Returns
    -------
    images : numpy.ndarray
        ``(N, 28, 28)`` uint8 (the sizes of the file).
    labels : numpy.ndarray
        ``(N,)`` int64.
    """
    option(split, _SPLITS, "split")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    prefix = _SPLITS[split]
    images = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1:
        raise ValueError(f"{root}: images of shape {images.shape} and labels of shape "
                         f"{labels.shape} are not (N, H, W) and (N,)")
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} images but {len(labels)} labels")
    return images, labels.astype(np.int64)
