# SPDX-License-Identifier: Apache-2.0
"""Fenchel–Young ReLU and softmax W-steps against CVXPY, optimality conditions and monotonicity."""

import warnings

import cvxpy as cp
import numpy as np
import pytest

from cvx_lifted.kernels import Ridge, relu_fenchel_wstep, softmax_wstep

CLARABEL_TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
CLARABEL_EXP = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}


def _vi(result):
    """Return ``(value, info)`` of a kernel's StepResult."""
    return result.value, result.info


def _data(m, p, q, scale, seed):
    rng = np.random.default_rng(seed)
    X = scale * rng.random((m, p))
    W_true = rng.normal(size=(q, p)) / scale
    T = np.maximum(X @ W_true.T + 0.3 * rng.normal(size=(m, q)), 0.0)
    labels = np.argmax(X @ W_true.T + rng.normal(size=(m, q)), axis=1)
    Y = np.eye(q)[labels]
    return X, T, Y


def _relu_objective(X, T, alpha, W, b):
    U = X @ W.T + b
    return np.sum(0.5 * np.maximum(U, 0) ** 2 - U * T) + 0.5 * alpha * np.sum(W**2)


def _softmax_objective(X, Y, alpha, W, b):
    U = X @ W.T + b
    umax = U.max(axis=1, keepdims=True)
    lse = np.log(np.exp(U - umax).sum(axis=1)) + umax[:, 0]
    return np.sum(lse) - np.sum(Y * U) + 0.5 * alpha * np.sum(W**2)


def _solve(prob, **opts):
    with warnings.catch_warnings():  # accuracy is asserted by the callers
        warnings.simplefilter("ignore", UserWarning)
        prob.solve(**opts)


# scipy's L-BFGS-B stalls near 1e-9 relative gradient (its line search needs decreases above
# rounding); the column-wise L-BFGS (its line search also accepts on the sign of the slope) and the
# accelerated MM reach 1e-12.
METHOD_TOL = [("lbfgs", 1e-11), ("scipy", 1e-8), ("amm", 1e-12)]


@pytest.mark.parametrize("scale", [1.0, 5.0])
@pytest.mark.parametrize(("method", "tol"), METHOD_TOL)
def test_relu_fenchel_wstep_vs_cvxpy(scale, method, tol):
    m, p, q = 40, 5, 3
    X, T, _ = _data(m, p, q, scale, seed=0)
    alpha = 0.5
    (W, b), info = _vi(
        relu_fenchel_wstep(
            X,
            T,
            alpha,
            np.zeros((q, p)),
            np.zeros(q),
            tol=tol,
            max_iter=20000,
            method=method,
        )
    )
    assert info["converged"]
    Wv, bv = cp.Variable((q, p)), cp.Variable(q)
    U = X @ Wv.T + np.ones((m, 1)) @ cp.reshape(bv, (1, q), order="C")
    obj = cp.sum(0.5 * cp.square(cp.pos(U)) - cp.multiply(U, T)) + alpha / 2 * cp.sum_squares(Wv)
    prob = cp.Problem(cp.Minimize(obj))
    _solve(prob, solver="CLARABEL", **CLARABEL_TIGHT)
    np.testing.assert_allclose(W, Wv.value, atol=1e-6)
    np.testing.assert_allclose(b, bv.value, atol=1e-6 * scale)
    f = _relu_objective(X, T, alpha, W, b)
    assert f <= prob.value + 1e-9 * abs(prob.value)
    assert info["objective"] == pytest.approx(f, rel=1e-12)


@pytest.mark.parametrize(("method", "tol"), METHOD_TOL)
def test_relu_fenchel_wstep_kkt(method, tol):
    X, T, _ = _data(80, 6, 4, 1.0, seed=1)
    alpha = 0.2
    W, b = relu_fenchel_wstep(
        X, T, alpha, np.zeros((4, 6)), np.zeros(4), tol=tol, max_iter=20000, method=method
    ).value
    R = np.maximum(X @ W.T + b, 0) - T
    g0 = np.linalg.norm(np.vstack([X.T @ T, T.sum(axis=0)]))
    atol = 10 * tol * g0
    np.testing.assert_allclose(R.T @ X + alpha * W, 0.0, atol=atol)
    np.testing.assert_allclose(R.sum(axis=0), 0.0, atol=atol)


def test_relu_fenchel_wstep_reuses_ridge_and_is_monotone():
    X, T, _ = _data(60, 8, 5, 1.0, seed=2)
    alpha = 0.3
    ridge = Ridge(X, alpha)
    W0, b0 = ridge.solve(T)  # the plain ReLU W-step: the natural warm start
    f0 = _relu_objective(X, T, alpha, W0, b0)
    previous = f0
    for max_iter, method in (
        (1, "amm"),
        (2, "amm"),
        (5, "amm"),
        (50, "amm"),
        (1, "lbfgs"),
        (3, "lbfgs"),
        (50, "lbfgs"),
        (1, "scipy"),
        (3, "scipy"),
        (50, "scipy"),
    ):
        if max_iter == 1:
            previous = f0
        (W, b), info = _vi(
            relu_fenchel_wstep(
                X,
                T,
                alpha,
                W0,
                b0,
                ridge=ridge,
                max_iter=max_iter,
                tol=1e-14,
                method=method,
            )
        )
        f = _relu_objective(X, T, alpha, W, b)
        assert f <= f0 + 1e-12 * abs(f0)
        assert info["objective_start"] == pytest.approx(f0, rel=1e-12)
        assert f <= previous + 1e-9 * abs(previous)  # more iterations never hurt here
        previous = f
    W1, b1 = relu_fenchel_wstep(X, T, alpha, W0, b0, ridge=ridge, tol=1e-9, max_iter=5000).value
    W2, b2 = relu_fenchel_wstep(X, T, alpha, W0, b0, tol=1e-9, max_iter=5000).value
    np.testing.assert_allclose(W1, W2, atol=1e-12)
    W3, b3 = relu_fenchel_wstep(
        X, T, alpha, W0, b0, ridge=ridge, tol=1e-12, max_iter=5000, method="amm"
    ).value
    np.testing.assert_allclose(W1, W3, atol=1e-7)
    np.testing.assert_allclose(b1, b3, atol=1e-7)
    with pytest.raises(ValueError, match="ridge"):
        relu_fenchel_wstep(X, T, 2 * alpha, W0, b0, ridge=ridge)


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_softmax_wstep_vs_cvxpy(scale):
    m, p, q = 50, 4, 3
    X, _, Y = _data(m, p, q, scale, seed=3)
    alpha = 0.4
    (W, b), info = _vi(
        softmax_wstep(X, Y, alpha, np.zeros((q, p)), np.zeros(q), tol=1e-9, max_iter=2000)
    )
    assert info["grad_norm"] < 1e-7
    Wv, bv = cp.Variable((q, p)), cp.Variable(q)
    U = X @ Wv.T + np.ones((m, 1)) @ cp.reshape(bv, (1, q), order="C")
    obj = (
        cp.sum(cp.log_sum_exp(U, axis=1))
        - cp.sum(cp.multiply(Y, U))
        + alpha / 2 * cp.sum_squares(Wv)
    )
    prob = cp.Problem(cp.Minimize(obj), [cp.sum(bv) == 0])
    _solve(prob, solver="CLARABEL", **CLARABEL_EXP)
    np.testing.assert_allclose(W, Wv.value, atol=1e-6)
    np.testing.assert_allclose(b, bv.value, atol=1e-6)
    assert abs(b.sum()) < 1e-12
    f = _softmax_objective(X, Y, alpha, W, b)
    assert f <= prob.value + 1e-9 * abs(prob.value)


def test_softmax_wstep_kkt_and_preconditioner():
    X, _, Y = _data(70, 5, 4, 1.0, seed=4)
    alpha = 0.3
    W, b = softmax_wstep(X, Y, alpha, np.zeros((4, 5)), np.zeros(4), tol=1e-9, max_iter=3000).value
    U = X @ W.T + b
    S = np.exp(U - U.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    np.testing.assert_allclose((S - Y).T @ X + alpha * W, 0.0, atol=1e-6)
    np.testing.assert_allclose((S - Y).sum(axis=0), 0.0, atol=1e-6)
    W2, b2 = softmax_wstep(
        X, Y, alpha, np.zeros((4, 5)), np.zeros(4), tol=1e-9, max_iter=3000, precondition=False
    ).value
    np.testing.assert_allclose(W2, W, atol=1e-6)
    np.testing.assert_allclose(b2, b, atol=1e-6)


def test_softmax_wstep_monotone():
    X, _, Y = _data(40, 5, 3, 2.0, seed=5)
    alpha = 0.1
    rng = np.random.default_rng(6)
    W0, b0 = rng.normal(size=(3, 5)), rng.normal(size=3)
    f0 = _softmax_objective(X, Y, alpha, W0, b0)
    for max_iter in (1, 3, 100):
        (W, b), info = _vi(softmax_wstep(X, Y, alpha, W0, b0, max_iter=max_iter))
        assert _softmax_objective(X, Y, alpha, W, b) <= f0 + 1e-12 * abs(f0)
        assert info["objective_start"] == pytest.approx(f0, rel=1e-12)


def test_float32_in_float32_out():
    X, T, Y = _data(30, 4, 3, 1.0, seed=7)
    X32, T32, Y32 = X.astype(np.float32), T.astype(np.float32), Y.astype(np.float32)
    W, b = relu_fenchel_wstep(X32, T32, 1.0, np.zeros((3, 4)), np.zeros(3)).value
    assert W.dtype == np.float32 and b.dtype == np.float32
    W64, _ = relu_fenchel_wstep(X, T, 1.0, np.zeros((3, 4)), np.zeros(3)).value
    np.testing.assert_allclose(W, W64, atol=1e-3)
    W, b = softmax_wstep(X32, Y32, 1.0, np.zeros((3, 4)), np.zeros(3)).value
    assert W.dtype == np.float32 and b.dtype == np.float32


def test_bad_input():
    X, T, Y = _data(10, 3, 2, 1.0, seed=8)
    W0, b0 = np.zeros((2, 3)), np.zeros(2)
    with pytest.raises(ValueError, match="T"):
        relu_fenchel_wstep(X, -T - 1.0, 1.0, W0, b0)
    with pytest.raises(ValueError, match="alpha"):
        relu_fenchel_wstep(X, T, 0.0, W0, b0)
    with pytest.raises(ValueError, match="method"):
        relu_fenchel_wstep(X, T, 1.0, W0, b0, method="newton")
    with pytest.raises(ValueError, match="W0"):
        relu_fenchel_wstep(X, T, 1.0, np.zeros((3, 3)), b0)
    with pytest.raises(ValueError, match="b0"):
        relu_fenchel_wstep(X, T, 1.0, W0, np.zeros(3))
    with pytest.raises(ValueError, match="T"):
        relu_fenchel_wstep(X, T[:5], 1.0, W0, b0)
    with pytest.raises(ValueError, match="X"):
        relu_fenchel_wstep(np.full_like(X, np.nan), T, 1.0, W0, b0)
    with pytest.raises(ValueError, match="Y"):
        softmax_wstep(X, 2 * Y, 1.0, W0, b0)
    with pytest.raises(ValueError, match="Y"):
        softmax_wstep(X, -Y, 1.0, W0, b0)
    with pytest.raises(ValueError, match="alpha"):
        softmax_wstep(X, Y, -1.0, W0, b0)
    with pytest.raises(ValueError, match="W0"):
        softmax_wstep(X, Y, 1.0, np.full((2, 3), np.inf), b0)


class _CountProducts:
    """Count the products over the data (``cvx_lifted.threads.matmul``) a kernel makes."""

    def __init__(self, monkeypatch, m):
        import cvx_lifted.threads as threads_module

        self.m = m
        self.calls = []
        original = threads_module.matmul

        def counting(A, B):
            if m in A.shape:  # a product over the rows of the data
                self.calls.append((A.shape, B.shape))
            return original(A, B)

        monkeypatch.setattr(threads_module, "matmul", counting)


@pytest.mark.parametrize("max_iter", [1, 3])
def test_relu_fenchel_wstep_product_budget(monkeypatch, max_iter):
    """Two products per iteration once the image of the start is remembered; none for the scale."""
    X, T, _ = _data(120, 6, 4, 1.0, seed=11)
    alpha = 0.4
    ridge = Ridge(X, alpha)
    W0, b0 = ridge.solve(T)
    count = _CountProducts(monkeypatch, X.shape[0])
    (W1, b1), info = _vi(
        relu_fenchel_wstep(X, T, alpha, W0, b0, ridge=ridge, tol=1e-14, max_iter=max_iter)
    )
    assert not info["converged"] and info["n_iter"] == max_iter
    assert len(count.calls) == 1 + 2 * max_iter  # the start's image, then two per iteration
    U = ridge.recall_image(W1, b1)
    assert U is not None
    np.testing.assert_allclose(U, X @ W1.T + b1, rtol=1e-10, atol=1e-10)
    count.calls.clear()
    (W2, b2), info2 = _vi(
        relu_fenchel_wstep(X, T, alpha, W1, b1, ridge=ridge, tol=1e-14, max_iter=max_iter)
    )
    assert len(count.calls) == 2 * max_iter  # warm: the remembered image
    assert info2["objective_start"] == pytest.approx(_relu_objective(X, T, alpha, W1, b1), 1e-10)
    assert _relu_objective(X, T, alpha, W2, b2) <= info2["objective_start"]


def test_relu_fenchel_wstep_float32_products_track_the_exact_ones():
    """Mixed precision: float32 products, float64 iterates; objective within float32 rounding."""
    X, T, _ = _data(400, 12, 6, 1.0, seed=12)
    alpha = 0.3
    exact, mixed = Ridge(X, alpha, products="exact"), Ridge(X, alpha, products="float32")
    W0, b0 = exact.solve(T)
    f0 = _relu_objective(X, T, alpha, W0, b0)
    out = {}
    for name, ridge in (("exact", exact), ("mixed", mixed)):
        (W, b), info = _vi(
            relu_fenchel_wstep(X, T, alpha, W0, b0, ridge=ridge, max_iter=30, tol=1e-12)
        )
        assert W.dtype == np.float64
        out[name] = _relu_objective(X, T, alpha, W, b)
        assert out[name] <= f0 + 1e-6 * abs(f0)
        assert info["objective"] == pytest.approx(out[name], rel=1e-5)
    assert out["mixed"] == pytest.approx(out["exact"], rel=1e-6)


def test_relu_fenchel_wstep_continues_its_memory_on_a_shared_ridge():
    """Two one-iteration calls that continue each other = one call of two iterations."""
    X, T, _ = _data(150, 7, 4, 1.0, seed=13)
    alpha = 0.25
    ridge = Ridge(X, alpha)
    W0, b0 = ridge.solve(T)
    W2, b2 = relu_fenchel_wstep(
        X, T, alpha, W0, b0, ridge=Ridge(X, alpha), tol=1e-14, max_iter=2
    ).value
    W1, b1 = relu_fenchel_wstep(X, T, alpha, W0, b0, ridge=ridge, tol=1e-14, max_iter=1).value
    W1b, b1b = relu_fenchel_wstep(X, T, alpha, W1, b1, ridge=ridge, tol=1e-14, max_iter=1).value
    np.testing.assert_allclose(W1b, W2, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(b1b, b2, rtol=1e-9, atol=1e-11)
    # a call from another start forgets the memory: the same answer as a fresh ridge
    Wa, _ = relu_fenchel_wstep(X, T, alpha, W0, b0, ridge=ridge, tol=1e-14, max_iter=1).value
    np.testing.assert_allclose(Wa, W1, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("setting", [1, "auto"])
def test_relu_passes_in_row_parts_match_one_numpy_pass(setting):
    """The ReLU weight step's passes over the image, in row parts on measured threads or not."""
    from cvx_lifted.kernels import glm
    from cvx_lifted.threads import training_threads

    rng = np.random.default_rng(4)
    m, q = 20_011, 7  # four parts of 5,002-5,003 rows
    U, V = rng.normal(size=(m, q)), rng.normal(size=(m, q))
    T = np.abs(rng.normal(size=(m, q)))
    t = rng.uniform(0.1, 1.0, size=q)
    with training_threads(setting, max_threads=2):
        for _ in range(3):  # the chooser measures one thread, then two, then picks
            value, slope, vT = glm._relu_line_sums(U, V, T, t, True)
            data, uT = glm._relu_objective_sums(U, T)
            resid = glm._relu_residual(U, T)
        moved = U.copy()
        glm._advance(moved, V, t)
    W = np.maximum(U + t * V, 0.0)
    np.testing.assert_allclose(value, (W * W).sum(0), rtol=1e-12)
    np.testing.assert_allclose(slope, (V * W).sum(0), rtol=1e-12)
    np.testing.assert_allclose(vT, (V * T).sum(0), rtol=1e-12)
    P = np.maximum(U, 0.0)
    np.testing.assert_allclose(data, (0.5 * P * P - U * T).sum(0), rtol=1e-12)
    np.testing.assert_allclose(uT, (U * T).sum(0), rtol=1e-12)
    np.testing.assert_array_equal(resid, P - T)
    np.testing.assert_allclose(moved, U + t * V, rtol=1e-15, atol=1e-15)
