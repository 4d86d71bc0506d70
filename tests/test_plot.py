# SPDX-License-Identifier: Apache-2.0
"""Plots: contents of the axes on real histories and activations, saving, missing matplotlib."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cvxpy as cp
import numpy as np
import pytest

pytest.importorskip("matplotlib")

import cvx_lifted as cl  # noqa: E402
from cvx_lifted import plot  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained():
    """A tiny ReLU network trained for 4 sweeps on the generic path, with validation scores."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    Y = np.maximum(X @ [[1.0], [-1.0], [0.5]], 0.0)
    net = cl.LiftedNetwork([3, 4, 1], activation="relu", lam=1.0, rho=1e-3)
    result = net.fit(X, Y, max_iter=4, tol=0, backend="cvxpy", random_state=0, validation=(X, Y))
    return net, result


@pytest.fixture(scope="module")
def soft_threshold():
    return cl.custom_activation(
        name="plot_test_soft_threshold",
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + 0.5 * cp.sum(cp.abs(z)),
        closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - 0.5, 0.0),
        register=False,
    )


@pytest.fixture(scope="module")
def shifted_clip():
    return cl.custom_activation(
        name="plot_test_clip",
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
        domain=lambda u, z: [z >= -0.5, z <= 2.0],
        closed_form=lambda u: np.clip(u, -0.5, 2.0),
        register=False,
    )


# ------------------------------------------------------------------------------ objective
def test_plot_objective_total_and_terms(trained):
    net, result = trained
    history = result.history
    ax = plot.plot_objective(history)
    term_keys = [k for k in history.terms[0] if k != "total"]
    assert len(ax.lines) == 1 + len(term_keys)
    labels = [line.get_label() for line in ax.lines]
    assert labels[0] == "total"
    assert labels[1:] == ["divergence, layer 0", "divergence, layer 1", "loss", "weight penalty"]
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(x, np.arange(len(history.objective)))
    np.testing.assert_allclose(y, history.objective)
    assert ax.get_yscale() == "log"  # the objective falls by more than a decade
    assert ax.get_legend() is not None
    assert ax.get_xlabel().startswith("BCD sweep")


@pytest.mark.parametrize(
    "holder",
    ["history", "result", "network", "estimator", "dict"],
)
def test_plot_objective_accepts_every_holder(trained, holder):
    net, result = trained
    obj = {
        "history": result.history,
        "result": result,
        "network": net,
        "estimator": SimpleNamespace(history_=result.history),
        "dict": result.history.as_dict(),
    }[holder]
    ax = plot.plot_objective(obj, terms=False, logy=False)
    assert len(ax.lines) == 1
    assert ax.get_yscale() == "linear"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), result.history.objective)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3 sweeps on purpose
def test_plot_objective_of_a_fitted_estimator():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 3))
    y = np.maximum(X[:, 0] - X[:, 1], 0.0)
    est = cl.LiftedMLPRegressor(hidden_layer_sizes=(5,), max_iter=3, tol=0.5, random_state=0)
    with pytest.raises(ValueError, match="call fit first"):
        plot.plot_objective(est)
    est.fit(X, y)
    ax = plot.plot_objective(est)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), est.history_.objective)


def test_plot_objective_without_history():
    net = cl.LiftedNetwork([2, 3, 1])
    with pytest.raises(ValueError, match="train it first"):
        plot.plot_objective(net)
    with pytest.raises(TypeError, match="BCDHistory"):
        plot.plot_objective(42)
    with pytest.raises(ValueError, match="empty"):
        plot.plot_objective({"objective": []})


def test_plot_objective_draws_on_given_axes_and_saves(trained, tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    ax0, ax1 = fig.subplots(1, 2)
    path = tmp_path / "objective.png"
    ax = plot.plot_objective(trained[1], ax=ax1, path=path)
    assert ax is ax1
    assert not ax0.lines
    assert path.stat().st_size > 1000
    svg = tmp_path / "objective.svg"
    plot.plot_objective(trained[1], path=svg)
    assert svg.read_text().lstrip().startswith("<?xml")


# ------------------------------------------------------------------------------ accuracy
def test_plot_accuracy_history_and_extra(trained, tmp_path):
    _, result = trained
    val = result.history.validation
    train = [v + 0.01 for v in val]
    path = tmp_path / "accuracy.png"
    ax = plot.plot_accuracy(result, extra={"train": train}, ylabel="R^2", path=path)
    assert [line.get_label() for line in ax.lines] == ["validation", "train"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), val)
    np.testing.assert_array_equal(ax.lines[1].get_xdata(), np.arange(len(train)))
    assert ax.get_ylabel() == "R^2"
    assert path.exists()


def test_plot_accuracy_from_dict():
    ax = plot.plot_accuracy({"lifted": [0.1, 0.5, 0.8], "torch": [0.2, 0.6]})
    assert [line.get_label() for line in ax.lines] == ["lifted", "torch"]
    assert len(ax.lines[1].get_xdata()) == 2


def test_plot_accuracy_needs_scores():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10, 2))
    net = cl.LiftedNetwork([2, 2, 1], lam=1.0)
    result = net.fit(X, X[:, :1], max_iter=1, backend="cvxpy", random_state=0)
    with pytest.raises(ValueError, match="no validation scores"):
        plot.plot_accuracy(result)


# ------------------------------------------------------------------------------ landscape
LANDSCAPE = ["relu", "relu_fenchel", "leaky_relu", "hard_tanh", "sigmoid", "tanh", "sign"]


def _check_landscape(act, ax, u_range):
    act = cl.get_activation(act)
    assert len(ax.lines) == 2
    closed, argmin = ax.lines
    assert closed.get_label() == "closed form phi(u)"
    assert argmin.get_label() == "grid argmin"
    u, phi = closed.get_data()
    np.testing.assert_allclose(phi, act.act(u[:, None])[:, 0], atol=1e-12)
    assert u[0] == pytest.approx(u_range[0]) and u[-1] == pytest.approx(u_range[1])
    # the grid argmin is within one grid step of the closed form (where the argmin is unique)
    z_lo, z_hi = ax.get_ylim()
    u_step = u[1] - u[0]
    mesh = ax.collections[0]
    n_z = mesh.get_array().shape[0]
    z_step = (z_hi - z_lo) / (n_z - 1)
    ua, za = argmin.get_data()
    unique = np.abs(ua) > u_step if act.name == "sign" else np.ones(ua.shape, bool)
    err = np.abs(za - act.act(ua[:, None])[:, 0])[unique]
    assert np.all(err <= z_step * (1 + 1e-9)), (act.name, err.max(), z_step)
    return mesh


@pytest.mark.parametrize("name", LANDSCAPE)
def test_landscape_builtin(name):
    ax = plot.plot_divergence_landscape(name, resolution=(41, 81))
    mesh = _check_landscape(name, ax, (-3.0, 3.0))
    masked = np.ma.getmaskarray(mesh.get_array())
    assert masked.any(), "the default z range shows the outside of the domain"
    assert not masked.all()
    assert "D(u, z)" in ax.get_title()


def test_landscape_custom(soft_threshold, shifted_clip, tmp_path):
    path = tmp_path / "soft.png"
    ax = plot.plot_divergence_landscape(soft_threshold, u_range=(-2, 2), resolution=31, path=path)
    mesh = _check_landscape(soft_threshold, ax, (-2.0, 2.0))
    assert not np.ma.getmaskarray(mesh.get_array()).any()  # no domain: nothing masked
    assert path.stat().st_size > 1000
    ax = plot.plot_divergence_landscape(shifted_clip, resolution=31)
    mesh = _check_landscape(shifted_clip, ax, (-3.0, 3.0))
    masked = np.ma.getmaskarray(mesh.get_array())
    z = np.linspace(*ax.get_ylim(), masked.shape[0])
    np.testing.assert_array_equal(masked.any(axis=1), (z < -0.5) | (z > 2.0))


def test_landscape_grid_and_shift():
    u, z, D, z_argmin = plot.divergence_grid("relu_fenchel", (-1, 1), (-1, 2), (5, 31))
    assert D.shape == (31, 5) and u.shape == (5,) and z.shape == (31,)
    np.testing.assert_array_equal(np.ma.getmaskarray(D).any(axis=1), z < 0)
    np.testing.assert_allclose(z_argmin, np.maximum(u, 0.0), atol=z[1] - z[0])
    ax = plot.plot_divergence_landscape("relu_fenchel", shift=True, resolution=21, levels=0)
    values = ax.collections[0].get_array()
    np.testing.assert_allclose(values.min(axis=0), 0.0, atol=1e-12)  # every column touches zero
    assert len(ax.collections) == 1  # no contour lines


def test_landscape_on_given_axes_with_explicit_z_range():
    from matplotlib.figure import Figure

    ax0 = Figure().add_subplot()
    ax = plot.plot_divergence_landscape("tanh", (-2, 2), (-1.5, 1.5), ax=ax0, resolution=21)
    assert ax is ax0
    assert ax.get_ylim() == pytest.approx((-1.5, 1.5))


def test_landscape_rejects_what_it_cannot_draw():
    with pytest.raises(ValueError, match="elementwise"):
        plot.plot_divergence_landscape("sparsemax")
    with pytest.raises(cl.NotRepresentableError):
        plot.plot_divergence_landscape("softplus")
    with pytest.raises(ValueError, match="increasing"):
        plot.plot_divergence_landscape("relu", u_range=(1, -1))
    with pytest.raises(ValueError, match="resolution"):
        plot.plot_divergence_landscape("relu", resolution=1)


# ------------------------------------------------------------------------------ timing
def test_plot_resolve_timing(tmp_path):
    sizes = [1, 4, 16]
    path = tmp_path / "timing.png"
    ax = plot.plot_resolve_timing(
        sizes, [1e-3, 2e-3, 4e-3], [5e-3, 2e-2, 8e-2], compile_seconds=[1e-2] * 3, path=path
    )
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["re-solve (compiled once)", "rebuild every time", "one-off compile"]
    assert [t.get_text() for t in ax.texts] == ["5.0x", "10x", "20x"]
    assert "5.0x to 20.0x" in ax.get_title()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.0, 2.0, 4.0])  # milliseconds
    assert path.exists()
    assert len(plot.plot_resolve_timing(sizes, [1, 1, 1], [2, 2, 2]).lines) == 2
    with pytest.raises(ValueError, match="same length"):
        plot.plot_resolve_timing(sizes, [1, 2], [1, 2, 3])


# ------------------------------------------------------------------------------ no matplotlib
@pytest.mark.parametrize(
    "call",
    [
        lambda: plot.plot_objective({"objective": [1.0, 0.5]}),
        lambda: plot.plot_accuracy({"a": [1.0]}),
        lambda: plot.plot_divergence_landscape("relu", resolution=3),
        lambda: plot.plot_resolve_timing([1], [1.0], [2.0]),
    ],
    ids=["objective", "accuracy", "landscape", "timing"],
)
def test_missing_matplotlib_message(monkeypatch, call):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "cvx-lifted\[plot\]"'):
        call()


def test_module_imports_without_matplotlib():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import cvx_lifted.plot as p\n"
        "try:\n"
        "    p.plot_objective({'objective': [1.0]})\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "ImportError: cvx_lifted.plot needs matplotlib" in out.stdout
    assert 'pip install "cvx-lifted[plot]"' in out.stdout


# ------------------------------------------------------------------------------ fixes
def test_log_axis_follows_the_total_even_when_a_term_reaches_zero():
    """A loss that reaches exactly 0 no longer flattens the objective onto a linear axis."""
    history = {
        "objective": [50.0, 1.5, 0.9, 0.5],
        "terms": [
            {"loss": 2.0, "penalty": 0.1, "total": 50.0},
            {"loss": 0.5, "penalty": 0.2, "total": 1.5},
            {"loss": 0.0, "penalty": 0.2, "total": 0.9},
            {"loss": 0.0, "penalty": 0.2, "total": 0.5},
        ],
    }
    ax = plot.plot_objective(history)
    assert ax.get_yscale() == "log"
    loss = next(line for line in ax.lines if line.get_label() == "loss")
    assert np.isnan(loss.get_ydata()[2:]).all()  # not drawn where it is not positive
    flat = {"objective": [1.0, 0.9, 0.8], "terms": []}
    assert plot.plot_objective(flat).get_yscale() == "linear"  # less than a decade


def test_accuracy_curve_is_named_after_the_rows_scored(trained):
    _, result = trained
    ax = plot.plot_accuracy(result.history, label="test", ylabel="test accuracy")
    assert [line.get_label() for line in ax.lines] == ["test"]
    assert ax.get_legend().get_texts()[0].get_text() == "test"
    assert ax.get_ylabel() == "test accuracy"
    assert [line.get_label() for line in plot.plot_accuracy(result.history).lines] == ["validation"]


def test_a_minibatch_history_is_plotted_per_epoch():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 3))
    Y = np.eye(2)[(X[:, 0] > 0).astype(int)]
    net = cl.LiftedNetwork([3, 4, 2], output="simplex_xent")
    net.fit(X, Y, solver="minibatch", batch_size=20, max_iter=2)
    assert plot.plot_objective(net.history).get_xlabel().startswith("mini-batch BCD epoch")
    net.fit(X, Y, max_iter=2)
    assert plot.plot_objective(net.history).get_xlabel().startswith("BCD sweep")
