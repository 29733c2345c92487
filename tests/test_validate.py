"""Tests of spatial/_validate.py: options, integers and the data= convention, each message."""
import numpy as np
import pytest
import torch

from splinescope.spatial import migration
from splinescope.spatial import partition
from splinescope.spatial._validate import integer, option, points
from splinescope.spatial.data import moons
from splinescope.spatial.train import toy_mlp

from common import mlp


def test_option():
    assert option("a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match="'c' is not a valid option, must be one of 'a', 'b'$"):
        option("c", ("a", "b"))
    with pytest.raises(ValueError, match="'c' is not a valid kind, must be one of 'a', 'b' or an array$"):
        option("c", ("a", "b"), "kind", others=("an array",))
    with pytest.raises(ValueError, match="'c' is not a valid kind, must be 'a', None or points$"):
        option("c", ("a",), "kind", others=("None", "points"))
    with pytest.raises(ValueError, match=r"\['a'\] is not a valid option"):  # unhashable: still a ValueError
        option(["a"], ("a", "b"))
    assert option("x", {"x": 1, "y": 2}) == "x"  # the keys of a mapping


def test_integer():
    assert integer("k", 3) == 3 and type(integer("k", np.int64(3))) is int
    assert integer("k", 0, minimum=0) == 0
    with pytest.raises(ValueError, match="k must be a positive int, got 0$"):
        integer("k", 0, minimum=1)
    with pytest.raises(ValueError, match="k must be an int >= 2, got 1$"):
        integer("k", 1, minimum=2)
    for bad, got in [(1.5, "1.5"), (10.0, "float"), ("3", "str"), (True, "bool"), (None, "NoneType")]:
        with pytest.raises(TypeError, match=f"k must be an int, got {got}$"):
            integer("k", bad)
    with pytest.raises(ValueError, match="k must be a positive int, got 1.5"):  # a TypeError, and a ValueError as before
        integer("k", 1.5, minimum=1)


def test_wrong_type_is_a_type_error_everywhere():
    with pytest.raises(TypeError, match="depth must be a positive int, got 1.5"):
        toy_mlp(4, 1.5)
    with pytest.raises(TypeError, match="n must be an int, got float"):
        moons(10.0)


def test_points_convention():
    X, y = points(((0.1, 0.2), (0.3, 0.4)))  # a 2-tuple whose first element is 1-D: two points
    assert X.shape == (2, 2) and y is None
    X, y = points((np.zeros((3, 2)), [0, 1, 1]))  # first element 2-D: an (X, y) pair
    assert X.shape == (3, 2) and y.tolist() == [0, 1, 1]
    X, y = points((torch.zeros(3, 2), torch.tensor([0, 1, 1])))
    assert X.dtype == np.float64 and y.tolist() == [0, 1, 1]
    X, y = points((np.zeros((3, 2)), None))
    assert y is None
    assert points(None) == (None, None)
    with pytest.raises(ValueError, match=r"data must be \(N, 2\) points in slice coordinates or an \(X, y\) pair, "
                                         r"got X of shape \(3, 3\)"):
        points(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="test: X has 3 points but y has 2 labels"):
        points((np.zeros((3, 2)), [0, 1]), "test")
    with pytest.raises(TypeError, match="data must be .* of numbers, got str"):
        points("abc")


def test_spatial_and_render_read_data_alike():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from splinescope.render._plot import plot_partition

    p = partition(mlp([2, 4, 1]), (-1, 1, -1, 1))
    two = ((0.1, 0.2), (0.3, 0.4))
    d = migration.region_distances(p, data=two)
    assert d.shape == (len(p), 2)
    fig, ax = plt.subplots()
    art = plot_partition(p, ax, data=two)
    assert art.data.get_offsets().shape == (2, 2)
    plt.close(fig)
