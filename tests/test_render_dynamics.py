"""render.dynamics: the CKA heat maps, probe-agreement curves and the imbalance plot draw what they are given."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from splinescope.render.dynamics import plot_cka_matrices, plot_imbalance, plot_probe_agreement  # noqa: E402


def test_cka_heat_maps_show_the_matrices():
    M = np.array([[1.0, 0.2], [0.2, 1.0]])
    axes = plot_cka_matrices({"1": M, "3": M ** 2}, [0, 50])
    assert len(axes) == 2
    assert np.array_equal(axes[1].images[0].get_array(), M ** 2)
    assert axes[0].images[0].get_clim() == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"layer '1' has shape \(2, 2\), expected \(3, 3\)"):
        plot_cka_matrices({"1": M}, [0, 1, 2])
    with pytest.raises(ValueError, match="matrices is empty"):
        plot_cka_matrices({}, [0])


def test_agreement_and_imbalance_curves():
    ax = plot_probe_agreement([0, 9, 99], {"1": {"exact": np.array([0.3, 0.8, 1.0])}})
    assert np.allclose(ax.lines[0].get_xdata(), [1, 10, 100]) and np.allclose(ax.lines[0].get_ydata(), [0.3, 0.8, 1.0])
    a, b = plot_imbalance([0, 1], [2.0, 1.0], np.array([[3.0, 1.0], [2.0, 0.5]]))
    assert len(a.lines) == 1 and len(b.lines) == 2 and np.allclose(b.lines[1].get_ydata(), [1.0, 0.5])
