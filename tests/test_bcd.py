# SPDX-License-Identifier: Apache-2.0
"""Block-coordinate descent: exact blocks, monotone objective, both backends, bad input."""

import warnings

import numpy as np
import pytest

import cvx_lifted as cl
from cvx_lifted.bcd import BCDSolver
from cvx_lifted.defaults import WEIGHT_ITER_ROWS, auto_weight_iterations
from cvx_lifted.network import LiftedNetwork


def _data(m=40, n=3, q=2, classes=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n))
    if classes:
        y = (X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.3).astype(int) + (X[:, -1] > 0.8)
        y = y % classes
        return X, np.eye(classes)[y], y
    W = rng.standard_normal((q, n))
    return X, np.maximum(X @ W.T, 0) + 0.1 * rng.standard_normal((m, q)), None


# ------------------------------------------------------------------ a sweep worked by hand
@pytest.mark.parametrize("backend", ["numpy", "cvxpy"])
def test_hand_worked_first_sweep(backend):
    r"""Two samples, one ReLU unit, identity output, lam = 1, rho = 1/2 (alpha = m rho / lam = 1).

    X = [1, -1], Y = [-2, 2], W0 = W1 = 1, b0 = b1 = 0.

    Initial states: X1 = relu([1, -1]) = [1, 0]; output step X2 = (Y + U1)/2 = [-1/2, 1].
    J0 = (1/2)[1/2(9/4+1) + 1/2(0+1) + 1/2(9/4+1)] + 1/4(1+1) = 19/8.

    Sweep 1
    * W0: ridge of t=[1,0] on x=[1,-1] (sum x = 0, sum x^2 = 2, sum t = 1, sum xt = 1):
      w = (1 - 0)/(2 + 1 - 0) = 1/3, b = (1 - 0)/2 = 1/2.
    * W1: ridge of t=[-1/2, 1] on x=[1, 0] (sum x = 1, sum x^2 = 1, sum t = 1/2, sum xt = -1/2):
      w = (-1/2 - 1/4)/(1 + 1 - 1/2) = -1/2, b = (1/2 + 1/2)/2 = 1/2.
    * X1: u0 = [5/6, 1/6]; z = max(0, (u0 + w1 (X2 - b1)) / (1 + w1^2)) = max(0, [16/15, -1/15])
      = [16/15, 0] -- the non-negativity constraint is active for the second sample.
    * output: U1 = -1/2 z + 1/2 = [-1/30, 1/2]; X2 = (Y + U1)/2 = [-61/60, 5/4].
    * J1 = (1/2)[1/2(3481+2025)/3600 + 1/2(49/900+1/36) + 1/2(3481+2025)/3600] + 13/144
         = 3152/3600.
    """
    X = np.array([[1.0], [-1.0]])
    Y = np.array([[-2.0], [2.0]])
    net = LiftedNetwork([1, 1, 1], activation="relu", lam=1.0, rho=0.5)
    net.set_weights([[[1.0]], [[1.0]]], [[0.0], [0.0]])
    result = net.fit(
        X, Y, max_iter=1, tol=0, backend=backend, warm_start=True, accuracy="tight", state_tol=1e-12
    )
    tol = 1e-12 if backend == "numpy" else 1e-7
    np.testing.assert_allclose(net.weights[0], [[1 / 3]], atol=tol)
    np.testing.assert_allclose(net.biases[0], [1 / 2], atol=tol)
    np.testing.assert_allclose(net.weights[1], [[-1 / 2]], atol=tol)
    np.testing.assert_allclose(net.biases[1], [1 / 2], atol=tol)
    np.testing.assert_allclose(result.states[0], [[16 / 15], [0.0]], atol=tol)
    np.testing.assert_allclose(result.states[1], [[-61 / 60], [5 / 4]], atol=tol)
    assert result.history.objective[0] == pytest.approx(19 / 8, abs=1e-12)
    assert result.history.objective[1] == pytest.approx(3152 / 3600, abs=tol)


# ------------------------------------------------------------------ monotone blocks
CASES = [
    (act, hidden, output)
    for act in ["relu", "leaky_relu", "hard_sigmoid", "sigmoid"]
    for hidden in [1, 2, 3]
    for output in ["squared", "simplex_xent", "softmax_xent"]
]


@pytest.mark.parametrize(("activation", "hidden", "output"), CASES)
def test_objective_never_increases_after_any_block(activation, hidden, output):
    classes = 3 if output != "squared" else None
    X, Y, _ = _data(m=24, n=3, q=2, classes=classes, seed=hidden)
    sizes = [3, *[4] * hidden, Y.shape[1]]
    act = cl.get_activation(activation, alpha=0.2) if activation == "leaky_relu" else activation
    net = LiftedNetwork(sizes, activation=act, output=output, lam=1.0, rho=1e-2)
    result = net.fit(X, Y, max_iter=3, tol=0, random_state=1, track_blocks=True, batch_size=8)
    values = [result.history.objective[0]] + [v for _, _, v in result.history.blocks]
    slack = 1e-7 * (1 + abs(values[0]))  # compiled blocks are exact to the solver tolerance
    assert np.all(np.diff(values) <= slack), np.diff(values).max()
    assert values[-1] < values[0]
    n_blocks = (hidden + 1) + hidden + (output != "softmax_xent")
    assert len(result.history.blocks) == 3 * n_blocks


# ------------------------------------------------------------------ the two backends agree
AGREE = [
    ("relu", [3, 5, 2], "squared"),
    ("relu", [3, 5, 3], "simplex_xent"),
    ("relu_fenchel", [3, 5, 2], "squared"),
    ("hard_tanh", [3, 4, 4, 2], "squared"),
    ("relu", [3, 5, 3], "softmax_xent"),
    # the Fenchel-Young and simplex kernels against the compiled blocks
    ("sigmoid", [3, 5, 2], "squared"),
    ("tanh", [3, 4, 4, 2], "squared"),
    ("leaky_relu_fenchel", [3, 5, 3], "simplex_xent"),
    (["relu", "sigmoid"], [3, 4, 4, 2], "squared"),
    ("sparsemax", [3, 4, 2], "squared"),
]


@pytest.mark.parametrize(("activation", "sizes", "output"), AGREE)
def test_numpy_and_cvxpy_backends_give_the_same_iterates(activation, sizes, output):
    classes = sizes[-1] if output != "squared" else None
    X, Y, _ = _data(m=60, n=3, q=sizes[-1], classes=classes, seed=7)
    runs = {}
    for backend in ("numpy", "cvxpy"):
        net = LiftedNetwork(sizes, activation=activation, output=output, lam=1.0, rho=1e-2)
        res = net.fit(
            X,
            Y,
            max_iter=3,
            tol=0,
            random_state=3,
            backend=backend,
            accuracy="tight",
            state_tol=1e-12,
            weight_tol=1e-12,
            weight_max_iter=500,
            batch_size=20,
        )
        runs[backend] = (net, res)
    (n1, r1), (n2, r2) = runs["numpy"], runs["cvxpy"]
    assert set(r1.history.paths.values()) == {"numpy"}
    assert set(r2.history.paths.values()) == {"cvxpy"}
    for a, b in zip(n1.weights + n1.biases, n2.weights + n2.biases, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * (1 + np.abs(b).max()))
    for a, b in zip(r1.states, r2.states, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * (1 + np.abs(b).max()))
    np.testing.assert_allclose(r1.history.objective, r2.history.objective, rtol=1e-5)


def test_auto_backend_mixes_paths_per_block():
    X, Y, _ = _data(m=20, q=1)
    net = LiftedNetwork([3, 4, 4, 1], activation=["relu", "sign"])
    solver = BCDSolver(net)
    assert solver.paths == {
        "W0": "numpy",
        "W1": "cvxpy",  # sign's divergence |u| - uz is not smooth in u: no GLM kernel
        "W2": "numpy",
        "X1": "cvxpy",  # the next layer's sign divergence has no fast coupling
        "X2": "cvxpy",  # sign's own divergence is not strictly convex in z
        "output": "numpy",
    }
    with pytest.raises(ValueError, match="no fast path for block"):
        BCDSolver(net, backend="numpy")
    res = net.fit(X, Y, max_iter=2, random_state=0)
    assert res.history.paths["X1"] == "cvxpy"


@pytest.mark.parametrize(
    "activation", ["sigmoid", "tanh", "leaky_relu_fenchel", ["relu", "sigmoid"], "sparsemax"]
)
def test_fenchel_young_and_simplex_networks_train_on_the_fast_path_only(activation):
    X, Y, _ = _data(m=20, q=2)
    net = LiftedNetwork([3, 4, 4, 2], activation=activation)
    assert set(BCDSolver(net, backend="numpy").paths.values()) == {"numpy"}


# ------------------------------------------------------------------ lifted prediction rule
def test_lifted_rule_equals_feed_forward_for_one_hidden_relu_layer():
    X, Y, _ = _data(m=30, q=2)
    net = LiftedNetwork([3, 6, 2], activation="relu", output="squared")
    net.fit(X, Y, max_iter=5, random_state=0)
    ff = net.predict(X)
    for backend in ("numpy", "cvxpy"):
        lifted = net.predict_lifted(X, backend=backend)
        np.testing.assert_allclose(lifted, ff, atol=1e-6)


def test_lifted_rule_equals_feed_forward_for_fenchel_young_networks():
    X, Y, _ = _data(m=30, q=2)
    net = LiftedNetwork([3, 5, 5, 2], activation="relu_fenchel")
    net.fit(X, Y, max_iter=4, random_state=0)
    np.testing.assert_allclose(net.predict_lifted(X), net.predict(X), atol=1e-8)


@pytest.mark.parametrize("kwargs", [{"rho": 0.0}, {"penalty": "l1"}])
def test_lifted_rule_on_numpy_needs_fast_state_steps_only(kwargs):
    """Weight blocks without a fast path do not matter: lifted prediction never solves them."""
    X, Y, _ = _data(m=25, q=2, seed=4)
    net = LiftedNetwork([3, 5, 2], output="simplex_xent", **kwargs).initialize(0)
    np.testing.assert_allclose(
        net.predict_lifted(X, backend="numpy"), net.predict_lifted(X, backend="cvxpy"), atol=1e-4
    )
    sign = LiftedNetwork([3, 5, 2], activation="sign", output="simplex_xent").initialize(0)
    with pytest.raises(ValueError, match=r"no fast path for block\(s\) \['X1'\]"):
        sign.predict_lifted(X, backend="numpy")


def test_lifted_rule_differs_and_agrees_between_paths_for_deep_l2_relu():
    """With two l2-ReLU layers the penalty of the second divergence feeds back into X1."""
    X, Y, _ = _data(m=25, q=2, seed=4)
    net = LiftedNetwork([3, 5, 5, 2], activation="relu", lam=1.0)
    net.fit(X, Y, max_iter=4, random_state=2)
    fast, fast_states = net.predict_lifted(X, backend="numpy", return_states=True)
    slow, _ = net.predict_lifted(X, backend="cvxpy", return_states=True)
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    ff = net.forward(X)

    def penalty(states):
        Xs = [X, *states]
        return sum(
            net.lam[i] * net.divergence_of(i).value(net.preactivation(i, Xs[i]), Xs[i + 1])
            for i in range(net.n_layers)
        )

    ff_states = [*ff[:-1], net.head.activation.act(net.preactivation(2, ff[-2]))]
    assert penalty(fast_states) <= penalty(ff_states) + 1e-9


# ------------------------------------------------------------------ stopping and history
def test_tolerance_time_limit_and_callback_stop_training():
    X, Y, _ = _data(m=30, q=1)
    net = LiftedNetwork([3, 4, 1])
    res = net.fit(X, Y, max_iter=200, tol=1e-3, random_state=0)
    assert res.converged and res.stop_reason == "tol" and res.n_iter < 200
    res = net.fit(X, Y, max_iter=50, tol=0, random_state=0, callback=lambda k, r: k >= 2)
    assert res.stop_reason == "callback" and res.n_iter == 2
    res = net.fit(X, Y, max_iter=10_000, tol=0, time_limit=0.05, random_state=0)
    assert res.stop_reason == "time_limit" and res.n_iter < 10_000


def test_history_records_terms_timings_and_validation():
    X, Y, y = _data(m=40, classes=3)
    net = LiftedNetwork([3, 6, 3], output="simplex_xent")
    res = net.fit(X, Y, max_iter=3, tol=0, random_state=0, validation=(X, y))
    h = res.history
    assert len(h.objective) == len(h.terms) == len(h.validation) == 4
    assert set(h.terms[1]) == {"divergence_0", "divergence_1", "loss", "penalty", "total"}
    assert {"W0", "W1", "X1", "output", "sweep"} <= set(h.seconds[1])
    assert h.residuals[1]["X1.converged"] == 1.0 and "X1.n_iter" in h.residuals[1]
    assert all(0.0 <= v <= 1.0 for v in h.validation)
    assert net.history is h
    assert h.as_dict()["objective"] == h.objective


def test_results_are_deterministic_under_a_seed():
    X, Y, _ = _data(m=30, q=2)
    outs = []
    for _ in range(2):
        net = LiftedNetwork([3, 5, 2], activation="relu_fenchel")
        net.fit(X, Y, max_iter=3, random_state=42)
        outs.append(net.predict(X))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_float32_states_and_weights():
    X, Y, _ = _data(m=30, q=2)
    net = LiftedNetwork([3, 5, 2], dtype=np.float32)
    res = net.fit(X, Y, max_iter=3, random_state=0)
    assert all(W.dtype == np.float32 for W in net.weights)
    assert all(S.dtype == np.float32 for S in res.states)
    assert net.predict(X).dtype == np.float32
    assert res.history.objective[-1] < res.history.objective[0]


def test_verbose_shows_a_progress_bar(capsys):
    X, Y, _ = _data(m=20, q=1)
    LiftedNetwork([3, 4, 1]).fit(X, Y, max_iter=2, tol=0, random_state=0, verbose=True)
    err = capsys.readouterr().err
    assert "BCD sweeps" in err and "objective" in err


# ------------------------------------------------------------------ bad input
def test_bad_input_is_rejected_with_the_argument_named():
    X, Y, _ = _data(m=20, q=1)
    net = LiftedNetwork([3, 4, 1])
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        net.fit(Xn, Y)
    Yi = Y.copy()
    Yi[1, 0] = np.inf
    with pytest.raises(ValueError, match="Y contains NaN"):
        net.fit(X, Yi)
    with pytest.raises(ValueError, match="X has 2 features"):
        net.fit(X[:, :2], Y)
    with pytest.raises(ValueError, match=r"Y must have shape \(20, 1\)"):
        net.fit(X, Y[:10])
    with pytest.raises(ValueError, match="empty"):
        net.fit(X[:0], Y[:0])
    with pytest.raises(ValueError, match="2-D"):
        net.fit(X[:, 0], Y)
    with pytest.raises(ValueError, match="row 0 has a negative entry"):
        LiftedNetwork([3, 4, 2], output="simplex_xent").fit(X, np.hstack([Y, -Y]))


@pytest.mark.parametrize("output", ["simplex_xent", "softmax_xent"])
def test_classification_targets_must_be_probability_rows(output):
    X = np.random.default_rng(0).normal(size=(6, 3))
    Y = np.eye(2)[[0, 1, 0, 1, 0, 1]]
    Y[3] = 1.0  # two labels: weighed twice, and softmax_xent's loss unbounded below
    with pytest.raises(ValueError, match=r"row 3 sums to 2 \(1 such row"):
        LiftedNetwork([3, 4, 2], output=output).fit(X, Y)
    Y[3] = 0.5  # probability rows, in float32 too, are fine
    LiftedNetwork([3, 4, 2], output=output, dtype=np.float32).fit(X, Y, max_iter=1)
    Y[:, 0] += 2e-7  # float32 softmax rows sum to 1 give or take a few 1e-7
    LiftedNetwork([3, 4, 2], output=output).fit(X, Y, max_iter=1)
    with pytest.raises(RuntimeError, match="no weights yet"):
        LiftedNetwork([3, 4, 1]).predict(X)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lam": 0.0}, "lam must be > 0"),
        ({"lam": [1.0, -1.0]}, "lam must be > 0"),
        ({"lam": [1.0, 2.0, 3.0]}, "scalar or a sequence of 2"),
        ({"rho": -1.0}, "rho must be >= 0"),
        ({"rho": np.nan}, "rho must be finite"),
        ({"activation": ["relu", "relu"]}, "2 activations for 1 hidden"),
        ({"activation": "softplus"}, "no convex-program"),
        ({"activation": "max_pool"}, "pooling"),
        ({"output": "hinge"}, "unknown output"),
        ({"dtype": np.int64}, "float32 or float64"),
    ],
)
def test_bad_network_definitions(kwargs, match):
    with pytest.raises((ValueError, NotImplementedError), match=match):
        LiftedNetwork([3, 4, 1], **kwargs)
    with pytest.raises(ValueError, match="at least two positive integers"):
        LiftedNetwork([3])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "torch"}, "backend must be 'auto', 'numpy' or 'cvxpy'"),
        ({"max_iter": 0}, "max_iter must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"weight_max_iter": True}, "weight_max_iter must be a positive integer or 'auto'"),
        ({"weight_max_iter": "many"}, "weight_max_iter must be a positive integer or 'auto'"),
        ({"tol": -1.0}, "tol must be a finite number >= 0"),
        ({"state_tol": np.nan}, "state_tol must be a finite number >= 0"),
        ({"time_limit": 0}, "time_limit must be a positive"),
        ({"blas_threads": 0}, "blas_threads must be a positive integer, 'auto' or None"),
        ({"blas_threads": "many"}, "blas_threads must be a positive integer, 'auto' or None"),
    ],
)
def test_bad_solver_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BCDSolver(LiftedNetwork([3, 4, 1]), **kwargs)


def test_auto_weight_iterations_take_three_on_small_data_and_one_on_large():
    assert auto_weight_iterations(WEIGHT_ITER_ROWS - 1) == 3
    assert auto_weight_iterations(WEIGHT_ITER_ROWS) == 1
    solver = BCDSolver(LiftedNetwork([3, 4, 1]))
    assert solver.weight_max_iter == "auto"
    assert solver.weight_iterations(100) == 3
    assert BCDSolver(LiftedNetwork([3, 4, 1]), weight_max_iter=7).weight_iterations(10**6) == 7
    softmax = BCDSolver(LiftedNetwork([3, 4, 2], output="softmax_xent"))
    assert softmax.weight_iterations(10**6, layer=0) == 1
    assert softmax.weight_iterations(10**6, layer=1) == 3  # thin products: the head keeps 3
    # the fit resolves it from its rows: the relu_fenchel weight steps stop after one iteration
    rng = np.random.default_rng(0)
    for rows, cap in ((WEIGHT_ITER_ROWS - 1, 3), (WEIGHT_ITER_ROWS, 1)):
        X = rng.standard_normal((rows, 4))
        Y = np.maximum(X @ rng.standard_normal((4, 2)), 0.0)
        net = LiftedNetwork([4, 6, 2], activation="relu_fenchel", rho=1e-3)
        res = net.fit(X, Y, max_iter=2, tol=0, random_state=0, weight_tol=0.0)
        iters = [r["W0.n_iter"] for r in res.history.residuals if "W0.n_iter" in r]
        assert iters and max(iters) == cap


def test_a_compiled_block_over_the_memory_budget_is_refused_with_advice(monkeypatch):
    monkeypatch.setenv("CVX_LIFTED_BLOCK_MEMORY", str(64 * 2**20))
    X = np.random.default_rng(0).standard_normal((4000, 60))
    net = LiftedNetwork([60, 30, 30], activation="sign")
    with pytest.raises(cl.BlockTooLargeError, match="weight step of layer 0.*fast NumPy path"):
        net.fit(X, X[:, :30], max_iter=1)
    assert not net.is_fitted


def test_l1_and_custom_penalties_go_through_the_compiled_path():
    import cvxpy as cp

    X, Y, _ = _data(m=30, q=1, seed=5)
    sparse = LiftedNetwork([3, 6, 1], rho=0.05, penalty="l1")
    res = sparse.fit(X, Y, max_iter=4, tol=0, random_state=0, track_blocks=True)
    assert res.history.paths["W0"] == "cvxpy" and res.history.paths["X1"] == "numpy"
    values = [res.history.objective[0]] + [v for _, _, v in res.history.blocks]
    assert np.all(np.diff(values) <= 1e-7 * (1 + values[0]))
    ridge = LiftedNetwork([3, 6, 1], rho=0.05)
    ridge.fit(X, Y, max_iter=4, tol=0, random_state=0)
    # the l1 penalty zeroes weights exactly (to solver precision); the l2 one does not
    assert np.mean(np.abs(sparse.weights[0]) < 1e-6) > np.mean(np.abs(ridge.weights[0]) < 1e-6)
    assert res.history.terms[-1]["penalty"] == pytest.approx(
        0.05 * sum(np.abs(W).sum() for W in sparse.weights), rel=1e-12
    )
    boxed = LiftedNetwork(
        [3, 6, 1], rho=1.0, penalty=lambda W: 1e3 * cp.sum(cp.pos(cp.abs(W) - 0.2))
    )
    boxed.fit(X, Y, max_iter=3, random_state=0)
    assert max(np.abs(W).max() for W in boxed.weights) <= 0.2 + 1e-3
    with pytest.raises(ValueError, match="penalty must be"):
        LiftedNetwork([3, 6, 1], penalty="l3")


@pytest.mark.filterwarnings("ignore:rho = 0 leaves")  # the point of this test
def test_rho_zero_uses_the_compiled_weight_step():
    X, Y, _ = _data(m=20, q=1)
    net = LiftedNetwork([3, 4, 1], rho=0.0)
    assert BCDSolver(net).paths["W0"] == "cvxpy"
    with pytest.raises(ValueError, match="no fast path"):
        BCDSolver(net, backend="numpy")
    res = net.fit(X, Y, max_iter=2, random_state=0)
    assert res.history.objective[-1] < res.history.objective[0]


def test_lifted_rule_does_not_depend_on_the_batch():
    X, Y, _ = _data(m=40, q=2, seed=8)
    net = LiftedNetwork([3, 6, 6, 2], activation="relu", lam=1.0)
    net.fit(X, Y, max_iter=4, random_state=1)
    full = net.predict_lifted(X)
    for rows in (slice(0, 5), slice(17, 18), [3, 30, 11]):
        np.testing.assert_allclose(net.predict_lifted(X[rows]), full[rows], atol=1e-10)


# ------------------------------------------------------------------ the recorded objective
@pytest.mark.parametrize("output", ["simplex_xent", "squared", "softmax_xent"])
def test_objective_in_row_chunks_equals_the_whole_array_formula(output):
    # 2,000 rows of width 300 make three chunks of about 2 MB
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2000, 6))
    y = rng.integers(0, 3, 2000)
    Y = np.eye(3)[y]
    net = LiftedNetwork([6, 300, 3], activation="relu_fenchel", output=output, lam=0.7, rho=1e-2)
    result = net.fit(X, Y, max_iter=2, tol=0, random_state=0)
    Xs = [X, *result.states]
    U = [net.preactivation(layer, Xs[layer]) for layer in range(net.n_layers)]
    expected = {"divergence_0": 0.7 * net.activations[0].value(U[0], Xs[1]) / 2000}
    if output == "softmax_xent":
        expected["loss"] = net.head.loss(Y, U[1]) / 2000
    else:
        expected["divergence_1"] = 0.7 * net.head.activation.value(U[1], Xs[2]) / 2000
        expected["loss"] = net.head.loss(Y, Xs[2]) / 2000
    terms = net.objective_terms(Xs, Y)
    given = net.objective_terms(Xs, Y, images={0: U[0]})
    for key, value in expected.items():
        assert terms[key] == pytest.approx(value, rel=1e-12), key
        assert given[key] == pytest.approx(value, rel=1e-12), key
    # the solver's record uses the image its weight step kept: the same number
    assert result.history.objective[-1] == pytest.approx(terms["total"], rel=1e-12)
    # and the sweep's time counts the objective's evaluation
    for seconds in result.history.seconds[1:]:
        blocks = sum(v for k, v in seconds.items() if k != "sweep")
        assert seconds["objective"] > 0
        assert seconds["sweep"] >= blocks


def test_a_sweep_does_not_keep_the_states_it_replaced_alive():
    # fit() always passes a callback (it snapshots the last complete sweep); the partial result
    # handed to it must not hold the states through the next sweep (a second copy of each)
    import weakref

    X, Y, _ = _data(m=50, n=3, q=2)
    seen, alive = [], []

    def spy(self, history, Xs, *args, **kwargs):
        seen.append(weakref.ref(Xs[1]))
        alive.append(sum(ref() is not None for ref in seen[:-1]))  # earlier states still held
        return record(self, history, Xs, *args, **kwargs)

    record = BCDSolver._record
    net = LiftedNetwork([3, 4, 2], activation="relu_fenchel")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BCDSolver, "_record", spy)
        result = net.fit(X, Y, max_iter=3, tol=0, random_state=0)
    assert alive == [0, 0, 0, 0]  # at the start and after each of the three sweeps
    assert seen[-1]() is result.states[0]


def test_recorded_objective_with_mixed_precision_images_is_the_exact_one_to_float32():
    # 1,300 x 784 float64 inputs have over 10^6 entries: the weight step runs its products in
    # float32 and the recorded objective uses that image; it agrees with the float64 formula
    rng = np.random.default_rng(5)
    X = rng.random((1300, 784))
    Y = np.eye(4)[rng.integers(0, 4, 1300)]
    net = LiftedNetwork([784, 20, 4], activation="relu_fenchel", output="simplex_xent")
    result = net.fit(X, Y, max_iter=2, tol=0, random_state=0)
    exact = net.objective(X, Y, result.states)
    assert result.history.objective[-1] == pytest.approx(exact, rel=1e-5)
    assert result.history.objective[-1] != exact  # the float32 image, not a new product


# ------------------------------------------------------------------ the solver option of fit
def test_fit_solver_minibatch_runs_the_minibatch_solver_and_restores_on_errors():
    X, Y, _ = _data(m=120, n=3, classes=3, seed=2)
    net = LiftedNetwork([3, 6, 3], output="simplex_xent")
    result = net.fit(X, Y, solver="minibatch", max_iter=3, batch_size=40, random_state=0)
    assert result.n_iter == 3 and set(result.history.paths.values()) == {"minibatch"}
    again = LiftedNetwork([3, 6, 3], output="simplex_xent")
    again.fit(X, Y, solver="minibatch", max_iter=3, batch_size=40, random_state=0)
    for W, V in zip(net.weights, again.weights, strict=True):
        np.testing.assert_array_equal(W, V)  # deterministic under a seed
    weights = [W.copy() for W in net.weights]

    def fail(epoch, partial):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError) as err:  # an error after epoch 1: back to epoch 1
        net.fit(X, Y, solver="minibatch", max_iter=3, warm_start=True, callback=fail)
    assert "the weights of sweep 1" in str(err.value.__notes__)
    assert not all(np.array_equal(W, V) for W, V in zip(weights, net.weights, strict=True))
    with pytest.raises(ValueError, match="solver must be 'bcd' or 'minibatch'"):
        net.fit(X, Y, solver="sgd")


def test_reprs_summarise_instead_of_dumping_arrays():
    X, Y, _ = _data(m=200, q=2, seed=1)
    result = LiftedNetwork([3, 5, 2]).fit(X, Y, max_iter=2)
    text = repr(result)
    assert text.startswith("BCDResult(n_iter=2, converged=") and "states [(200, 5)" in text
    assert len(text) < 600  # no arrays in it
    assert repr(LiftedNetwork([3, 5, 2])) != repr(LiftedNetwork([3, 5, 2], dtype="float32"))
    assert "penalty='l1'" in repr(LiftedNetwork([3, 5, 2], penalty="l1"))


def test_rho_zero_says_the_weight_steps_leave_their_fast_path():
    X, Y, _ = _data(m=30, q=2, seed=2)
    message = r"rho = 0 leaves the weight step\(s\) \['W0', 'W1'\]"
    with pytest.warns(UserWarning, match=message) as w:
        LiftedNetwork([3, 4, 2], rho=0.0).fit(X, Y, max_iter=1)
    assert w[0].filename == __file__


@pytest.mark.parametrize("solver", ["bcd", "minibatch"])
@pytest.mark.parametrize("seed", ["a", -1, 1.5, True])
def test_a_bad_seed_is_named(solver, seed):
    X, Y, _ = _data(m=30, q=2, seed=2)
    with pytest.raises(ValueError, match="random_state must be None, an integer >= 0"):
        LiftedNetwork([3, 4, 2]).fit(X, Y, max_iter=1, random_state=seed, solver=solver)


def test_a_state_step_stopped_at_its_cap_warns_that_the_problem_is_badly_scaled():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = X @ rng.normal(size=5)
    net = LiftedNetwork([5, 20, 1], activation="relu")
    with pytest.warns(UserWarning, match=r"state step\(s\) \['X1'\] stopped at their iteration"):
        result = net.fit(X, 1e4 * y[:, None], max_iter=1, random_state=0)  # targets of 1e4
    assert result.history.residuals[-1]["X1.converged"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LiftedNetwork([5, 20, 1], activation="relu").fit(X, y[:, None], max_iter=1)
