# SPDX-License-Identifier: Apache-2.0
"""Bad input to LiftedNetwork and the estimators: errors that name the argument and the fix."""

import warnings

import numpy as np
import pytest

from cvx_lifted import LiftedMLPClassifier, LiftedMLPRegressor, LiftedNetwork
from cvx_lifted.network import max_magnitude


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer_sizes": (5, "a", 3)}, r"layer_sizes\[1\] is 'a' \(str\); every entry"),
        ({"layer_sizes": (5, 2.5, 3)}, r"layer_sizes\[1\] is 2.5"),
        ({"layer_sizes": (5, True, 3)}, r"layer_sizes\[1\] is True \(bool\)"),
        ({"layer_sizes": (5, 0, 3)}, r"layer_sizes\[1\] is 0"),
        ({"layer_sizes": "5,3"}, "layer_sizes must be a sequence of positive integers"),
        ({"layer_sizes": 5}, "layer_sizes must be a sequence of positive integers"),
        ({"layer_sizes": [5]}, "at least two positive integers"),
        ({"activation": 3}, r"activation must be a name .*got 3 \(int\)"),
        ({"activation": ["relu", 3]}, r"activation\[1\]: activation must be a name"),
        ({"activation": "relux"}, "unknown activation 'relux'. Did you mean 'relu'"),
        ({"lam": "x"}, "lam must be a number or a sequence of 2 numbers"),
        ({"rho": [1.0, 2.0, 3.0]}, "rho must be a scalar or a sequence of 2 values"),
    ],
)
def test_constructor_errors_name_the_argument(kwargs, message):
    args = {"layer_sizes": (5, 4, 3), **kwargs}
    with pytest.raises(ValueError, match=message):
        LiftedNetwork(**args)


def test_layer_sizes_accept_integral_numbers():
    assert LiftedNetwork((np.int64(5), 4.0, 3)).layer_sizes == (5, 4, 3)


@pytest.mark.parametrize("scale", [1e155, 1e200, 1e300])
def test_huge_inputs_name_the_argument_and_the_scale(scale):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    X[:, 2] *= scale
    Y = rng.standard_normal((20, 1))
    net = LiftedNetwork([3, 4, 1])
    with pytest.raises(ValueError, match=r"X has entries as large as .* \(column 2\)") as info:
        net.fit(X, Y, max_iter=2)
    assert "Rescale it first" in str(info.value) and "nan" not in str(info.value)
    with pytest.raises(ValueError, match=r"^Y has entries as large as"):
        net.fit(X / scale, Y * scale, max_iter=2)
    with pytest.raises(ValueError, match="X has entries as large as"):
        LiftedMLPRegressor(hidden_layer_sizes=(4,), max_iter=2).fit(X, Y.ravel())
    with pytest.raises(ValueError, match="X has entries as large as"):
        LiftedMLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, (Y.ravel() > 0))


def test_the_magnitude_bound_depends_on_the_dtype():
    assert 1e149 < max_magnitude(np.float64) < 1e151
    assert 1e14 < max_magnitude(np.float32) < 1e16
    X = np.full((4, 2), 1e20)
    net = LiftedNetwork([2, 3, 1], dtype=np.float32).initialize(0)
    with pytest.raises(ValueError, match="overflow float32"):
        net.predict(X)
    LiftedNetwork([2, 3, 1]).initialize(0).predict(X)  # fine in float64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_iter": 0}, "max_iter must be a positive integer"),
        ({"max_iter": 2.5}, "max_iter must be a positive integer"),
        ({"tol": -1.0}, "tol must be a finite number >= 0"),
        ({"tol": float("nan")}, "tol must be a finite number >= 0"),
        ({"backend": "torch"}, "backend must be 'auto', 'numpy' or 'cvxpy'"),
    ],
)
def test_predict_lifted_checks_its_options(kwargs, message):
    net = LiftedNetwork([3, 4, 2], output="simplex_xent").initialize(0)
    with pytest.raises(ValueError, match=message):
        net.predict_lifted(np.ones((2, 3)), **kwargs)


def test_objective_checks_the_states_and_is_infinite_outside_a_domain():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    Y = np.eye(2)[rng.integers(0, 2, 20)]
    net = LiftedNetwork([3, 4, 2], activation="sigmoid", output="simplex_xent").initialize(0)
    X1, X2 = net.forward(X)
    assert np.isfinite(net.objective(X, Y, [X1, X2]))
    for states, message in [
        ([X1], r"states must hold 2 arrays"),
        ([X1[:, :3], X2], "states\\[0\\] has 3 features, the network expects 4"),
        ([X1[:5], X2], "states\\[0\\] has 5 rows, X has 20"),
        ([X1 * np.nan, X2], "states\\[0\\] contains NaN"),
    ]:
        with pytest.raises(ValueError, match=message):
            net.objective(X, Y, states)
    with pytest.raises(ValueError, match="Y has 5 rows, X has 20"):
        net.objective(X, Y[:5], [X1, X2])
    # a sigmoid's state below 0, an output row off the simplex: the divergence is +inf there
    terms = net.objective(X, Y, [X1 - 0.6, X2], terms=True)
    assert terms["divergence_0"] == terms["total"] == np.inf
    assert np.isfinite(terms["divergence_1"]) and np.isfinite(terms["loss"])
    terms = net.objective(X, Y, [X1, X2 - 0.6], terms=True)
    assert terms["divergence_1"] == terms["loss"] == terms["total"] == np.inf


def test_a_classification_head_needs_two_outputs():
    for output in ("simplex_xent", "softmax_xent"):
        with pytest.raises(ValueError, match=f"output='{output}' needs one output per class"):
            LiftedNetwork([5, 4, 1], output=output)


@pytest.mark.parametrize(("activation", "y"), [("relu", -1.0), ("sigmoid", 2.0)])
def test_targets_outside_the_output_activation_range_warn(activation, y):
    X = np.random.default_rng(0).normal(size=(20, 3))
    Y = np.full((20, 1), y)
    Y[0] = 0.5
    net = LiftedNetwork([3, 4, 1], output_activation=activation)
    with pytest.warns(UserWarning, match=f"the range of output_activation='{activation}'") as rec:
        net.fit(X, Y, max_iter=1)
    assert rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.fit(X, np.clip(Y, 0.0, 1.0), max_iter=1)  # inside: no warning
