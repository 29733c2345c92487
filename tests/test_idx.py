"""Tests of spatial.idx on small IDX files written here byte by byte."""
import gzip
import struct

import numpy as np
import pytest

from splinescope.spatial.idx import load_mnist, read_idx


def write(path, code, shape, payload: bytes, gz=False):
    head = bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", s) for s in shape)
    (gzip.open if gz else open)(path, "wb").write(head + payload)
    return path


def test_ubyte_and_gz(tmp_path):
    pix = bytes(range(24))
    a = read_idx(write(tmp_path / "a-idx3-ubyte", 0x08, (2, 3, 4), pix))
    b = read_idx(write(tmp_path / "b-idx3-ubyte.gz", 0x08, (2, 3, 4), pix, gz=True))
    assert a.dtype == np.uint8 and a.shape == (2, 3, 4)
    np.testing.assert_array_equal(a, np.arange(24).reshape(2, 3, 4))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("code,fmt,dtype", [(0x09, "b", np.int8), (0x0B, "h", np.int16),
                                            (0x0C, "i", np.int32), (0x0D, "f", np.float32),
                                            (0x0E, "d", np.float64)])
def test_big_endian_types(tmp_path, code, fmt, dtype):
    values = [-3, 1, 2, 100]
    a = read_idx(write(tmp_path / "x", code, (4,), struct.pack(f">4{fmt}", *values)))
    assert a.dtype == dtype and a.dtype.isnative
    np.testing.assert_array_equal(a, np.array(values, dtype))


def test_load_mnist(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    write(tmp_path / "t10k-images-idx3-ubyte.gz", 0x08, imgs.shape, imgs.tobytes(), gz=True)
    write(tmp_path / "t10k-labels-idx1-ubyte", 0x08, labels.shape, labels.tobytes())
    X, y = load_mnist(tmp_path, "test")
    np.testing.assert_array_equal(X, imgs)
    assert y.dtype == np.int64 and y.tolist() == [3, 1, 4, 1, 5]
    with pytest.raises(FileNotFoundError, match="no train-images-idx3-ubyte or train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="'val' is not a valid split, must be one of 'train', 'test'"):
        load_mnist(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_mnist(tmp_path / "nope")
    write(tmp_path / "t10k-labels-idx1-ubyte", 0x08, (4,), labels[:4].tobytes())
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        load_mnist(tmp_path, "test")


def test_bad_files(tmp_path):
    (tmp_path / "a").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(tmp_path / "a")
    with pytest.raises(ValueError, match="unknown IDX element type 0x07"):
        read_idx(write(tmp_path / "b", 0x07, (1,), b"\x00"))
    with pytest.raises(ValueError, match=r"holds 3 bytes of data but its header \(2, 2\) needs 4"):
        read_idx(write(tmp_path / "c", 0x08, (2, 2), b"\x00\x01\x02"))
    (tmp_path / "d").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="is truncated"):
        read_idx(tmp_path / "d")
