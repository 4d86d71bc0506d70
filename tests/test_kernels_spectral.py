# SPDX-License-Identifier: Apache-2.0
"""The spectral curvature bound of a batch and the weight step that uses it."""

import numpy as np
import pytest

from cvx_lifted import kernels
from cvx_lifted.kernels.proximal import prox_weight_step
from cvx_lifted.kernels.spectral import SpectralBound


def _rows(m=150, p=120, decay=0.93, seed=0, products="exact"):
    """Rows whose covariance falls like decay**j (pixels-like: a few strong directions)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, p)) * decay ** np.arange(p) + 3.0
    return X, kernels.CentredRows(X, products=products)


def _bound_matrix(bound, p):
    E = bound.vectors.astype(np.float64)
    return E @ np.diag(bound.values) @ E.T + bound.tail * (np.eye(p) - E @ E.T)


@pytest.mark.parametrize("products", ["exact", "float32"])
def test_the_bound_majorises_the_curvature_and_keeps_the_top_eigenpairs(products):
    X, rows = _rows(products=products)
    bound = SpectralBound(rows, rank=20)
    Xc = X - X.mean(axis=0)
    C = Xc.T @ Xc
    sigma = np.linalg.eigvalsh(C)[::-1]
    tol = (1e-12 if products == "exact" else 1e-5) * sigma[0]
    assert bound.vectors.dtype == (np.float64 if products == "exact" else np.float32)
    assert bound.vectors.shape == (120, 20)
    np.testing.assert_allclose(bound.values, sigma[:20], rtol=0, atol=tol)
    np.testing.assert_allclose(bound.vectors.T.astype(float) @ bound.vectors, np.eye(20), atol=1e-5)
    margin = 150 * np.finfo(rows.kernel.dtype).eps * sigma[0]  # m eps sigma_1, and rounding
    assert sigma[20] <= bound.tail <= sigma[20] + 2 * margin
    gap = np.linalg.eigvalsh(_bound_matrix(bound, 120) - C)
    assert gap.min() >= -tol  # B - Xc^T Xc is positive semidefinite


def test_solve_applies_the_inverse_of_the_bounded_curvature():
    _, rows = _rows()
    bound = SpectralBound(rows, rank=10)
    G = np.random.default_rng(1).standard_normal((7, 120))
    scale, shift = 0.3, 2.0
    M = scale * _bound_matrix(bound, 120) + shift * np.eye(120)
    np.testing.assert_allclose(bound.solve(G.copy(), scale, shift), np.linalg.solve(M, G.T).T)


def test_fits_compares_the_bound_of_the_rest_with_the_penalty():
    _, rows = _rows()
    bound = SpectralBound(rows, rank=10)
    assert bound.fits(bound.tail / kernels.spectral.TIGHT)
    assert not bound.fits(0.99 * bound.tail / kernels.spectral.TIGHT)


def test_a_rank_beyond_the_rows_is_refused_by_the_constructor_and_skipped_by_of():
    _, rows = _rows(m=30)
    with pytest.raises(ValueError, match=r"rank=64 needs at least 66 rows"):
        SpectralBound(rows, rank=64)
    with pytest.raises(ValueError, match="rank must be an integer >= 1"):
        SpectralBound(rows, rank=0)
    assert SpectralBound.of(rows, 64) is None
    assert isinstance(SpectralBound.of(rows, 10), SpectralBound)


@pytest.mark.parametrize("coupling", ["l2", "softmax"])  # curvature L = 1 and 1/2
def test_with_every_direction_kept_the_bounded_step_is_the_exact_one(coupling):
    # rows of rank 8 < rank 20: the bound is exact on the rows' span and the rest has no data
    rng = np.random.default_rng(2)
    X = rng.standard_normal((100, 8)) @ rng.standard_normal((8, 150))
    rows = kernels.CentredRows(X, products="exact")
    bound = SpectralBound(rows, rank=20)
    assert bound.tail < 1e-9 * bound.values[0]
    if coupling == "l2":
        g = kernels.L2Coupling(rng.standard_normal((100, 5)))
    else:
        g = kernels.SoftmaxCoupling(np.eye(5)[rng.integers(0, 5, 100)])
    W0, b0 = rng.standard_normal((5, 150)) / 10, rng.standard_normal(5)
    options = {"weight": 2.5, "rho": 0.1, "mu": 0.3, "n_iter": 1}
    W, b = prox_weight_step(rows, g, W0, b0, bound=bound, **options)
    W_exact, b_exact = prox_weight_step(X, g, W0, b0, **options)  # the kernel system's step
    np.testing.assert_allclose(W, W_exact, atol=1e-8)
    np.testing.assert_allclose(b, b_exact, atol=1e-8)


def test_the_bounded_step_is_a_stationary_point_of_the_bounded_majoriser():
    # softmax (L = 1/2), weight 2.5: the gradient of the majoriser with B in place of Xc^T Xc
    # vanishes at the step, in W and in b
    X, rows = _rows()
    rng = np.random.default_rng(4)
    g = kernels.SoftmaxCoupling(np.eye(4)[rng.integers(0, 4, 150)])
    bound = SpectralBound(rows, rank=10)
    W0, b0 = rng.standard_normal((4, 120)) / 10, rng.standard_normal(4)
    w, rho, mu, m, L = 2.5, 0.1, 0.3, 150, 0.5
    W, b = prox_weight_step(rows, g, W0, b0, weight=w, rho=rho, mu=mu, bound=bound)
    U0 = X @ W0.T + b0
    _, grad = g.value_grad(U0)
    Xc = X - X.mean(axis=0)
    B = _bound_matrix(bound, 120)
    dW = w / m * grad.T @ Xc + w * L / m * (W - W0) @ B + rho * W + mu * (W - W0)
    np.testing.assert_allclose(dW, 0, atol=1e-10)
    db = grad.sum(axis=0) + L * (X @ W.T + b - U0).sum(axis=0)
    np.testing.assert_allclose(db, 0, atol=1e-10)


def test_a_bound_needs_the_centred_rows_it_was_made_from():
    X, rows = _rows()
    bound = SpectralBound(rows, rank=10)
    T = np.zeros((150, 3))
    args = (kernels.L2Coupling(T), np.zeros((3, 120)), np.zeros(3))
    with pytest.raises(ValueError, match="bound= needs X as the CentredRows"):
        prox_weight_step(X, *args, weight=1.0, rho=0.1, mu=0.1, bound=bound)
    _, narrow = _rows(p=100)
    with pytest.raises(ValueError, match="inputs of width 120"):
        prox_weight_step(narrow, args[0], np.zeros((3, 100)), args[2], weight=1.0, rho=0.1,
                         mu=0.1, bound=bound)  # fmt: skip


@pytest.mark.parametrize("products", ["exact", "float32"])
def test_more_bounded_iterations_decrease_the_proximal_objective_further(products):
    X, rows = _rows(products=products)
    rng = np.random.default_rng(3)
    T = np.maximum(X @ rng.standard_normal((120, 6)) / 10, 0)
    W0, b0 = rng.standard_normal((6, 120)) / 10, np.zeros(6)
    coupling = kernels.ReluFenchelCoupling(T)
    bound = SpectralBound(rows, rank=10)
    m, rho, mu = X.shape[0], 1e-3, 0.05

    def F(W, b):
        value, _ = coupling.value_grad(X @ W.T + b)
        return value / m + 0.5 * rho * np.sum(W**2) + 0.5 * mu * np.sum((W - W0) ** 2)

    values = [F(W0, b0)]
    for n_iter in (1, 2, 5, 30):
        W, b = prox_weight_step(
            rows, coupling, W0, b0, weight=1.0, rho=rho, mu=mu, n_iter=n_iter, bound=bound
        )
        values.append(F(W, b))
    assert np.all(np.diff(values) < 0), values
    exact = prox_weight_step(rows, coupling, W0, b0, weight=1.0, rho=rho, mu=mu, n_iter=30)
    assert values[-1] == pytest.approx(F(*exact), rel=1e-3)  # the same minimiser in the end
