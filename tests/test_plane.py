"""spatial.Plane: lifting slice coordinates, construction through three inputs, errors."""
import numpy as np
import pytest
import torch

from splinescope import spatial


def test_lift_and_through():
    a, b, c = np.zeros((2, 3)), np.ones((2, 3)), np.arange(6.0).reshape(2, 3)
    pl = spatial.Plane.through(a, b, c)
    assert pl.shape == (2, 3) and pl.dim == 6
    np.testing.assert_allclose(pl.lift([[0, 0], [1, 0], [0, 1]]), np.stack([a, b, c]).reshape(3, -1))
    t = spatial.Plane(torch.zeros(4), torch.eye(4)[0], torch.eye(4)[2])
    np.testing.assert_allclose(t.lift([[2.0, 3.0]]), [[2.0, 0.0, 3.0, 0.0]])
    assert "dim=4" in repr(t)


def test_errors():
    with pytest.raises(ValueError, match="one shape"):
        spatial.Plane(np.zeros(3), np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="linearly dependent"):
        spatial.Plane(np.zeros(3), np.ones(3), 2 * np.ones(3))
    with pytest.raises(ValueError, match="collinear"):
        spatial.Plane.through(np.zeros(3), np.ones(3), 2 * np.ones(3))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        spatial.Plane([0.0], [1.0], [2.0])
    with pytest.raises(ValueError, match="non-finite"):
        spatial.Plane([0.0, np.nan], [1.0, 0.0], [0.0, 1.0])
    with pytest.raises(TypeError, match="array or tensor of numbers"):
        spatial.Plane("abc", [1.0, 0.0], [0.0, 1.0])
