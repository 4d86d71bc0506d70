# SPDX-License-Identifier: Apache-2.0
"""Ridge kernel against the closed form, CVXPY and its optimality conditions."""

import cvxpy as cp
import numpy as np
import pytest
import scipy.linalg

from cvx_lifted.kernels import KernelRidge, Ridge

CLARABEL_TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def _data(m, p, q, scale, seed=0):
    rng = np.random.default_rng(seed)
    X = scale * rng.normal(size=(m, p)) + 0.5 * scale
    T = scale * rng.normal(size=(m, q))
    return X, T


def _closed_form(X, T, alpha, fit_intercept=True):
    """Least squares on the stacked system [X 1; sqrt(alpha) I 0] [W^T; b^T] = [T; 0]."""
    m, p = X.shape
    q = T.shape[1]
    if fit_intercept:
        A = np.vstack(
            [
                np.hstack([X, np.ones((m, 1))]),
                np.hstack([np.sqrt(alpha) * np.eye(p), np.zeros((p, 1))]),
            ]
        )
    else:
        A = np.vstack([X, np.sqrt(alpha) * np.eye(p)])
    B = np.vstack([T, np.zeros((p, q))])
    sol = scipy.linalg.lstsq(A, B)[0]
    W = sol[:p].T
    b = sol[p] if fit_intercept else np.zeros(q)
    return W, b


@pytest.mark.parametrize("scale", [1e-2, 1e2])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_closed_form(scale, fit_intercept):
    X, T = _data(40, 6, 3, scale)
    alpha = 0.3 * scale**2
    W, b = Ridge(X, alpha, fit_intercept=fit_intercept).solve(T)
    W_ref, b_ref = _closed_form(X, T, alpha, fit_intercept)
    np.testing.assert_allclose(W, W_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b, b_ref, rtol=1e-10, atol=1e-12 * scale)
    assert W.shape == (3, 6) and b.shape == (3,)


@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_ridge_vs_cvxpy(scale):
    X, T = _data(30, 5, 4, scale, seed=1)
    alpha = 0.7
    W, b = Ridge(X, alpha).solve(T)
    Wv, bv = cp.Variable((4, 5)), cp.Variable(4)
    resid = T - X @ Wv.T - np.ones((30, 1)) @ cp.reshape(bv, (1, 4), order="C")
    obj = 0.5 * cp.sum_squares(resid) + alpha / 2 * cp.sum_squares(Wv)
    cp.Problem(cp.Minimize(obj)).solve(solver="CLARABEL", **CLARABEL_TIGHT)
    np.testing.assert_allclose(W, Wv.value, atol=1e-6 * max(1.0, scale))
    np.testing.assert_allclose(b, bv.value, atol=1e-6 * max(1.0, scale))


def test_ridge_kkt_and_objective():
    X, T = _data(60, 8, 5, 1.0, seed=2)
    alpha = 1.5
    r = Ridge(X, alpha)
    W, b = r.solve(T)
    R = X @ W.T + b - T
    np.testing.assert_allclose(R.T @ X + alpha * W, 0.0, atol=1e-10)  # gradient in W
    np.testing.assert_allclose(R.sum(axis=0), 0.0, atol=1e-10)  # gradient in b (unpenalised)
    f = r.objective(W, b, T)
    assert f == pytest.approx(0.5 * np.sum(R**2) + 0.5 * alpha * np.sum(W**2), rel=1e-12)
    rng = np.random.default_rng(3)
    for _ in range(5):
        assert r.objective(W + 1e-3 * rng.normal(size=W.shape), b, T) > f
        assert r.objective(W, b + 1e-3 * rng.normal(size=b.shape), T) > f


def test_factor_is_reusable():
    X, T = _data(50, 7, 3, 1.0, seed=4)
    r = Ridge(X, 0.5)
    assert r.gram_seconds >= 0 and r.factor_seconds >= 0
    XtT, cs = r.moments(T)
    W1, b1 = r.solve_moments(XtT, cs)
    W2, b2 = r.solve(T)
    np.testing.assert_allclose(W1, W2, atol=1e-14)
    np.testing.assert_allclose(b1, b2, atol=1e-14)
    # the factor solves the augmented Gram system with scipy directly
    sol = scipy.linalg.cho_solve(r.factor, np.vstack([XtT, cs[None]]))
    np.testing.assert_allclose(sol[:7].T, W2, atol=1e-14)
    # a second target reuses the same factor
    T2 = T[:, ::-1] * 2.0
    W3, _ = r.solve(T2)
    np.testing.assert_allclose(W3, 2.0 * W2[::-1], atol=1e-12)


def test_many_rows_no_mxm():
    # m = 200,000 rows: an m x m matrix would need 320 GB; the kernel only forms (p+1)^2 and (p+1)q.
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200_000, 3))
    W_true = np.array([[1.0, -2.0, 0.5]])
    T = X @ W_true.T + 0.25
    W, b = Ridge(X, 1e-6).solve(T)
    np.testing.assert_allclose(W, W_true, atol=1e-6)
    np.testing.assert_allclose(b, [0.25], atol=1e-6)


def test_ridge_float32():
    X, T = _data(40, 5, 2, 1.0, seed=6)
    r32 = Ridge(X.astype(np.float32), 0.5)
    W, b = r32.solve(T.astype(np.float32))
    assert W.dtype == np.float32 and b.dtype == np.float32
    W64, b64 = Ridge(X, 0.5).solve(T)
    np.testing.assert_allclose(W, W64, atol=1e-4)
    W_mixed, _ = r32.solve(T)
    assert W_mixed.dtype == np.float64


@pytest.mark.parametrize("alpha", [0.0, -1.0, np.nan, np.inf])
def test_ridge_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        Ridge(np.ones((3, 2)), alpha)


def test_ridge_bad_input():
    with pytest.raises(ValueError, match="X"):
        Ridge(np.array([[1.0, np.nan]]), 1.0)
    with pytest.raises(ValueError, match="X"):
        Ridge(np.ones(3), 1.0)
    r = Ridge(np.ones((3, 2)), 1.0)
    with pytest.raises(ValueError, match="T"):
        r.solve(np.ones((4, 1)))
    with pytest.raises(ValueError, match="T"):
        r.solve(np.array([[1.0], [np.inf], [0.0]]))
    with pytest.raises(ValueError, match="W"):
        r.objective(np.ones((2, 3)), np.ones(2), np.ones((3, 2)))


def test_float32_uncentred_data_is_not_singular():
    """Mean 100, unit spread: a float32 Gram loses the intercept's Schur complement to rounding."""
    rng = np.random.default_rng(0)
    X = rng.normal(loc=100.0, size=(100, 2)).astype(np.float32)
    T = (X[:, :1] - 100.0) * 2.0 + 1.0
    W, b = Ridge(X, 1e-3).solve(T)
    W64, b64 = Ridge(X.astype(np.float64), 1e-3).solve(T.astype(np.float64))
    assert W.dtype == np.float32
    np.testing.assert_allclose(W, W64, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(b, b64, rtol=1e-3, atol=1e-2)


def test_mixed_precision_products():
    """Float32 products on a float64 X: the same answer to float32 accuracy, float64 out."""
    X, T = _data(300, 20, 40, 1.0, seed=7)
    exact = Ridge(X, 0.5, products="exact")
    mixed = Ridge(X, 0.5, products="float32")
    assert exact.product_dtype == np.float64 and mixed.product_dtype == np.float32
    assert mixed.product_matrix().dtype == np.float32 and exact.product_matrix() is exact.X
    W, b = mixed.solve(T)
    W_ref, b_ref = exact.solve(T)
    assert W.dtype == np.float64
    np.testing.assert_allclose(W, W_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b, b_ref, rtol=1e-4, atol=1e-5)
    # the Gram and its factor stay float64 and identical
    np.testing.assert_array_equal(mixed.gram, exact.gram)


def test_auto_products_follow_the_data_size(monkeypatch):
    import cvx_lifted.kernels.ridge as ridge_module

    X, _ = _data(30, 4, 1, 1.0, seed=8)
    assert Ridge(X, 1.0).product_dtype == np.float64  # small: exact
    monkeypatch.setattr(ridge_module, "MIXED_MIN_ENTRIES", X.size)
    assert Ridge(X, 1.0).product_dtype == np.float32  # as large as the limit: float32
    assert Ridge(X.astype(np.float32), 1.0).product_dtype == np.float32
    with pytest.raises(ValueError, match="products"):
        Ridge(X, 1.0, products="half")


def test_image_is_remembered_and_checked():
    X, _ = _data(50, 6, 1, 1.0, seed=9)
    rng = np.random.default_rng(10)
    W, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    r = Ridge(X, 1.0)
    U = r.image(W, b)
    np.testing.assert_allclose(U, X @ W.T + b, rtol=1e-12)
    assert r.image(W.copy(), b.copy()) is U  # equal weights: no product
    assert r.recall_image(W, b) is U
    W2 = W.copy()
    W2[0, 0] += 1e-9
    U2 = r.image(W2, b)
    assert U2 is not U and r.recall_image(W, b) is None  # only the last pair is kept
    np.testing.assert_allclose(U2, X @ W2.T + b, rtol=1e-12)
    r.forget_image()
    assert r.recall_image(W2, b) is None
    with pytest.raises(ValueError, match="W must have shape"):
        r.image(np.ones((3, 5)), b)


# ------------------------------------------------------------------ kernel form (rows < columns)
@pytest.mark.parametrize("scale", [1e-2, 1e2])
@pytest.mark.parametrize(("m", "p"), [(6, 40), (1, 5), (40, 6)])
def test_kernel_ridge_closed_form(scale, m, p):
    X, T = _data(m, p, 3, scale, seed=2)
    alpha = 0.3 * scale**2
    W, b = KernelRidge(X, alpha).solve(T)
    W_ref, b_ref = _closed_form(X, T, alpha)
    np.testing.assert_allclose(W, W_ref, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(b, b_ref, rtol=1e-9, atol=1e-11 * scale)
    assert W.shape == (3, p) and b.shape == (3,) and W.flags.c_contiguous


def test_kernel_ridge_float32_products_on_uncentred_data():
    """Mean 100, unit spread, float32 products: centring keeps K accurate to float32 level."""
    rng = np.random.default_rng(5)
    X = rng.normal(loc=100.0, size=(30, 80))
    T = X[:, :2] - 100.0
    W, b = KernelRidge(X, 1.0, products="float32").solve(T)
    W_ref, b_ref = KernelRidge(X, 1.0, products="exact").solve(T)
    assert W.dtype == np.float64
    np.testing.assert_allclose(W, W_ref, atol=1e-5 * np.abs(W_ref).max())
    np.testing.assert_allclose(b, b_ref, atol=1e-3)


def test_kernel_ridge_float32_factor_when_well_conditioned():
    """Float32 products and 1 + tr(K)/alpha <= 1e4: a float32 factor whose answer is a
    minimiser to second order (the objective's excess is the square of the solve's error)."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 400))
    T = X @ rng.normal(scale=0.05, size=(400, 30)) + 0.1 * rng.normal(size=(200, 30))
    alpha = 50.0  # tr(K)/alpha = 200 * 400 / 50 = 1,600
    fast = KernelRidge(X, alpha, products="float32")
    assert fast.factor[0].dtype == np.float32
    W, b = fast.solve(T)
    W_ref, b_ref = KernelRidge(X, alpha, products="exact").solve(T)
    assert W.dtype == np.float64
    np.testing.assert_allclose(W, W_ref, atol=1e-4 * np.abs(W_ref).max())
    exact = Ridge(X, alpha, products="exact")  # its objective: float64 products
    f, f_ref = exact.objective(W, b, T), exact.objective(W_ref, b_ref, T)
    assert f_ref <= f <= f_ref * (1 + 1e-9), (f, f_ref)


def test_kernel_ridge_float64_factor_when_ill_conditioned():
    X = np.random.default_rng(8).normal(size=(200, 400))
    assert KernelRidge(X, 1.0, products="float32").factor[0].dtype == np.float64  # tr/alpha 8e4
    assert KernelRidge(X, 50.0, products="exact").factor[0].dtype == np.float64


@pytest.mark.parametrize("products", ["exact", "float32"])
def test_kernel_ridge_reuses_a_kept_kernel_for_another_alpha(products):
    from cvx_lifted.kernels import centred_kernel

    X, T = _data(30, 80, 4, 1.0, seed=9)
    K = centred_kernel(X, products=products)
    first = KernelRidge(X, 2.0, products=products)
    np.testing.assert_array_equal(first.kernel, K)
    for alpha in (0.5, 2.0, 40.0):
        kept = KernelRidge(X, alpha, products=products, kernel=K)
        W, b = kept.solve(T)
        W_ref, b_ref = KernelRidge(X, alpha, products=products).solve(T)
        np.testing.assert_array_equal(W, W_ref)
        np.testing.assert_array_equal(b, b_ref)
    np.testing.assert_array_equal(K, centred_kernel(X, products=products))  # not modified
    with pytest.raises(ValueError, match=r"kernel must be .* shape \(30, 30\)"):
        KernelRidge(X, 1.0, products=products, kernel=K[:-1, :-1])
    with pytest.raises(ValueError, match="kernel must be .* dtype"):
        KernelRidge(X, 1.0, products=products, kernel=K.astype(np.float16))


@pytest.mark.parametrize("products", ["exact", "float32"])
def test_centred_rows_give_the_same_kernel_ridge_and_the_image(products):
    from cvx_lifted.kernels import CentredRows, centred_kernel

    X, T = _data(30, 80, 4, 1.0, seed=10)
    X = X + 5.0  # far from centred: the image must add back W x_bar
    rows = CentredRows(X, products=products)
    assert rows.shape == (30, 80) and rows.mean.dtype == np.float64
    np.testing.assert_allclose(rows.mean, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_array_equal(rows.kernel, centred_kernel(X, products=products))
    assert not rows.centred.flags.writeable and not rows.kernel.flags.writeable
    for alpha in (0.5, 40.0):
        W, b = KernelRidge(rows, alpha).solve(T)
        W_ref, b_ref = KernelRidge(X, alpha, products=products).solve(T)
        np.testing.assert_array_equal(W, W_ref)
        np.testing.assert_array_equal(b, b_ref)
    rng = np.random.default_rng(11)
    Wq, bq = rng.standard_normal((6, 80)), rng.standard_normal(6)
    U = rows.image(Wq, bq)
    tol = 1e-12 if products == "exact" else 2e-6
    assert U.dtype == np.float64 and U.shape == (30, 6)
    ref = X @ Wq.T + bq
    assert np.max(np.abs(U - ref)) <= tol * np.max(np.abs(ref))
    assert rows.image(Wq, bq, dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match=r"W must have shape \(q, 80\)"):
        rows.image(Wq[:, :-1], bq)
    with pytest.raises(ValueError, match="X must be finite|finite"):
        CentredRows(np.full((3, 5), np.nan))
    with pytest.raises(ValueError, match="products"):
        CentredRows(X, products="half")


def test_kernel_ridge_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        KernelRidge(np.ones((3, 5)), 0.0)
    with pytest.raises(ValueError, match="products"):
        KernelRidge(np.ones((3, 5)), 1.0, products="half")
    with pytest.raises(ValueError, match="T must have 3 rows"):
        KernelRidge(np.ones((3, 5)), 1.0).solve(np.ones((4, 1)))
