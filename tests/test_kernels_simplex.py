# SPDX-License-Identifier: Apache-2.0
"""Simplex projection and the cross-entropy output step against CVXPY, closed forms and KKT."""

import warnings

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cvx_lifted.kernels import (
    appendix_a_bounds,
    project_simplex,
    simplex_xent_prox,
    xent_bracket,
)

CLARABEL_TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
# Exponential cones with one-hot labels put z_i = 0 on the boundary; interior-point solvers then
# reach about 1e-7 at these settings (tight ECOS stalls at ~1e-6 and warns), so the kernel's
# objective is also required to be no worse than the solver's.
CLARABEL_EXP = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}


def _solve_quietly(prob, **opts):
    with warnings.catch_warnings():  # "solution may be inaccurate": accuracy is asserted below
        warnings.simplefilter("ignore", UserWarning)
        prob.solve(**opts)


TOL_EXACT = 1e-12  # closed form vs kernel
TOL_SOLVER = 1e-6  # kernel vs Clarabel


def _z_of_shift(U, Y, lam, t):
    """Stationarity in closed form: z_i(t) = ((a + sqrt(a^2 + 4 y/lam)) / 2, a = u + t."""
    a = U + t[:, None]
    return 0.5 * (a + np.sqrt(a * a + 4.0 * Y / lam))


# ------------------------------------------------------------------------------------------------
# project_simplex
# ------------------------------------------------------------------------------------------------


def test_project_simplex_closed_form():
    U = np.array([[0.5, 0.2, 0.9], [3.0, -1.0, 0.0], [0.1, 0.1, 0.1]])
    expected = np.array([[0.3, 0.0, 0.7], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(project_simplex(U), expected, atol=TOL_EXACT)
    np.testing.assert_allclose(
        project_simplex(U[0], radius=2.0), np.array([1.9, 1.0, 3.1]) / 3, atol=TOL_EXACT
    )


@pytest.mark.parametrize("scale", [1e-2, 1e2])
def test_project_simplex_vs_cvxpy(scale):
    rng = np.random.default_rng(0)
    U = scale * rng.normal(size=(6, 7))
    Z = project_simplex(U, radius=1.5)
    for u, z in zip(U, Z, strict=True):
        x = cp.Variable(u.size)
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - u)), [x >= 0, cp.sum(x) == 1.5])
        prob.solve(solver="CLARABEL", **CLARABEL_TIGHT)
        np.testing.assert_allclose(z, x.value, atol=TOL_SOLVER * max(1.0, scale))


def test_project_simplex_kkt():
    rng = np.random.default_rng(1)
    U = rng.normal(size=(50, 9))
    Z = project_simplex(U)
    assert (Z >= 0).all()
    np.testing.assert_allclose(Z.sum(axis=1), 1.0, atol=TOL_EXACT)
    # u - z = tau on the support, u <= tau off it
    tau = np.where(Z > 0, U - Z, -np.inf).max(axis=1)
    on = Z > 0
    np.testing.assert_allclose((U - Z)[on], np.broadcast_to(tau[:, None], U.shape)[on], atol=1e-12)
    assert (U[~on] <= np.broadcast_to(tau[:, None], U.shape)[~on] + 1e-12).all()


finite_rows = arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.integers(1, 8)),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=60, deadline=None)
@given(U=finite_rows, radius=st.floats(0.1, 10.0))
def test_project_simplex_properties(U, radius):
    Z = project_simplex(U, radius=radius)
    assert Z.shape == U.shape
    assert (Z >= 0).all()
    np.testing.assert_allclose(Z.sum(axis=1), radius, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(project_simplex(Z, radius=radius), Z, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    U=finite_rows,
    lam=st.floats(1e-3, 1e3),
    label_seed=st.integers(0, 2**32 - 1),
    soft=st.booleans(),
)
def test_xent_outputs_in_simplex(U, lam, label_seed, soft):
    rng = np.random.default_rng(label_seed)
    m, p = U.shape
    Y = rng.dirichlet(np.ones(p), size=m) if soft else np.eye(p)[rng.integers(0, p, m)]
    result = simplex_xent_prox(U, Y, lam)
    Z, info = result.value, result.info
    assert info["converged"].all()
    assert (Z >= 0).all()
    np.testing.assert_allclose(Z.sum(axis=1), 1.0, atol=1e-12)
    assert (Z[Y > 0] > 0).all()  # log z_i is finite wherever y_i > 0


def test_project_simplex_dtype_and_errors():
    U32 = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    assert project_simplex(U32).dtype == np.float32
    assert project_simplex(U32.astype(np.float64)).dtype == np.float64
    with pytest.raises(ValueError, match="U"):
        project_simplex(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="radius"):
        project_simplex(np.ones((2, 2)), radius=0.0)
    with pytest.raises(ValueError, match="U"):
        project_simplex(np.ones((2, 2, 2)))


# ------------------------------------------------------------------------------------------------
# simplex_xent_prox
# ------------------------------------------------------------------------------------------------


def _xent_cvxpy(u, y, lam):
    z = cp.Variable(u.size)
    on = np.flatnonzero(y > 0)
    obj = -y[on] @ cp.log(z[on]) + lam / 2 * cp.sum_squares(z - u)
    prob = cp.Problem(cp.Minimize(obj), [z >= 0, cp.sum(z) == 1])
    _solve_quietly(prob, solver="CLARABEL", **CLARABEL_EXP)
    return z.value, prob.value


def _xent_objective(z, u, y, lam):
    on = y > 0
    return -np.sum(y[on] * np.log(z[on])) + lam / 2 * np.sum((z - u) ** 2)


@pytest.mark.parametrize(("scale", "lam"), [(0.3, 2.0), (3.0, 0.5), (1.0, 20.0)])
@pytest.mark.parametrize("soft", [False, True])
def test_xent_vs_cvxpy(scale, lam, soft):
    rng = np.random.default_rng(2)
    m, p = 5, 6
    U = scale * rng.normal(size=(m, p))
    if soft:
        Y = rng.dirichlet(np.ones(p), size=m)
        Y[:, 0] = 0.0  # some zero labels
        Y /= Y.sum(axis=1, keepdims=True)
    else:
        Y = np.eye(p)[rng.integers(0, p, m)]
    result = simplex_xent_prox(U, Y, lam)
    Z, info = result.value, result.info
    assert info["converged"].all()
    assert (info["residual"] <= 1e-14).all()
    for u, y, z in zip(U, Y, Z, strict=True):
        z_ref, val_ref = _xent_cvxpy(u, y, lam)
        np.testing.assert_allclose(z, z_ref, atol=2 * TOL_SOLVER)
        assert _xent_objective(z, u, y, lam) <= val_ref + 1e-9 * (1 + abs(val_ref))


def test_xent_kkt_closed_form():
    rng = np.random.default_rng(3)
    m, p, lam = 200, 10, 0.7
    U = rng.normal(size=(m, p))
    Y = np.eye(p)[rng.integers(0, p, m)]
    result = simplex_xent_prox(U, Y, lam)
    Z, info = result.value, result.info
    # the returned z is the closed-form stationary point at the returned shift, and is feasible
    np.testing.assert_allclose(Z, _z_of_shift(U, Y, lam, info["shift"]), atol=TOL_EXACT)
    assert (Z >= 0).all()
    np.testing.assert_allclose(Z.sum(axis=1), 1.0, atol=1e-14)
    assert (info["n_iter"] <= 12).all()


@pytest.mark.parametrize("lam", [1e-4, 0.7, 1e4])
@pytest.mark.parametrize("scale", [0.0, 0.1, 10.0, 1e4])
def test_xent_one_label_rows_in_closed_form_match_newton(monkeypatch, lam, scale):
    """One-hot rows take the closed-form shift; they agree with Newton's answer to rounding."""
    import cvx_lifted.kernels.simplex as simplex

    rng = np.random.default_rng(11)
    m, p = 300, 10
    U = scale * rng.normal(size=(m, p)) + scale * rng.normal()
    Y = np.eye(p)[rng.integers(0, p, m)]
    Y[:40] = rng.dirichlet(np.ones(p), size=40)  # soft rows: Newton's
    Y[40:50] = 0.0  # no label: the projection
    Y[50:60] *= 0.3  # one label of weight 0.3: closed form too
    closed = simplex_xent_prox(U, Y, lam)
    nan_shift = lambda u, c: np.full(u.shape[0], np.nan)  # noqa: E731
    monkeypatch.setattr(simplex, "_one_label_shift", nan_shift)
    newton = simplex_xent_prox(U, Y, lam)
    assert closed.info["converged"].all() and newton.info["converged"].all()
    assert (closed.info["residual"] <= 1e-14).all()
    np.testing.assert_allclose(closed.value, newton.value, rtol=0, atol=1e-13)
    in_closed_form = closed.info["n_iter"][50:] == 0
    if scale <= 10.0:  # moderate scales: (nearly) every one-label row in closed form
        assert in_closed_form.mean() > 0.95
    assert (closed.info["n_iter"][:40] > 0).all()


@pytest.mark.parametrize("lam", [1e-300, 1.0, 1e300])
def test_xent_one_label_closed_form_overflows_quietly_to_newton(lam):
    U = np.array([[1e300, -1e300, 0.0], [1e200, 1e-300, -5.0], [0.0, 0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = simplex_xent_prox(U, np.eye(3), lam)
    assert result.info["converged"].all()
    np.testing.assert_allclose(result.value.sum(axis=1), 1.0, atol=1e-14)


def test_xent_zero_labels_is_projection():
    rng = np.random.default_rng(4)
    U = rng.normal(size=(7, 5))
    Y = np.zeros_like(U)
    Y[:3] = np.eye(5)[:3]
    Z = simplex_xent_prox(U, Y, 1.3).value
    np.testing.assert_allclose(Z[3:], project_simplex(U[3:]), atol=TOL_EXACT)


def test_xent_two_coordinates_closed_form():
    # p = 2, y = (1, 0), u = 0, lam = 0.02: the optimum is z = (1, 0), shift t = 1 - 1/lam = -49.
    result = simplex_xent_prox(np.zeros(2), np.array([1.0, 0.0]), 0.02)
    Z, info = result.value, result.info
    np.testing.assert_allclose(Z, [1.0, 0.0], atol=TOL_EXACT)
    np.testing.assert_allclose(info["shift"], [-49.0], atol=TOL_EXACT)


def _random_instances(rng, n_inst):
    for _ in range(n_inst):
        p = int(rng.integers(2, 12))
        lam = float(10.0 ** rng.uniform(-3, 3))
        scale = float(10.0 ** rng.uniform(-2, 1.5))
        U = scale * rng.normal(size=(20, p))
        if rng.random() < 0.5:
            Y = np.eye(p)[rng.integers(0, p, 20)]
        else:
            Y = rng.dirichlet(0.3 * np.ones(p), size=20)
        yield U, Y, lam


def test_rigorous_bracket_and_corrected_bound_bracket_the_root():
    rng = np.random.default_rng(5)
    for U, Y, lam in _random_instances(rng, 150):
        info = simplex_xent_prox(U, Y, lam).info
        t = info["shift"]
        lo, hi = xent_bracket(U, Y, lam)
        slack = 1e-9 * (1.0 + np.abs(t))
        assert (lo <= t + slack).all() and (t <= hi + slack).all()
        # f(lo) <= 0 <= f(hi), evaluated with the closed form
        assert (_z_of_shift(U, Y, lam, lo).sum(axis=1) <= 1.0 + 1e-12).all()
        assert (_z_of_shift(U, Y, lam, hi).sum(axis=1) >= 1.0 - 1e-12).all()
        bounds = appendix_a_bounds(U, Y, lam)
        assert (bounds.upper >= t - slack).all()  # the paper's upper bound is valid
        assert (bounds.lower_corrected <= t + slack).all()  # the corrected lower bound is valid
        Z = _z_of_shift(U, Y, lam, t)
        assert (Z >= bounds.z_min * (1 - 1e-9)).all()  # z_i >= exp(-theta / y_i)


def test_paper_lower_bound_fails_when_coordinates_are_clipped():
    """Documents the finding: Appendix A's lower bound ignores the multipliers of z_i >= 0."""
    # The smallest counter-example: p = 2, u = 0, y = (1, 0), lam = 0.02 (our scaling).
    b = appendix_a_bounds(np.zeros((1, 2)), np.array([[1.0, 0.0]]), 0.02)
    assert b.lower[0] == pytest.approx(-24.75, abs=1e-2)  # the paper's "lower" bound
    assert b.upper[0] == pytest.approx(-49.0)  # ... exceeds even the (valid) upper bound
    assert b.lower_corrected[0] <= -49.0
    # Random one-hot instances with small lam: the bound is violated in most rows ...
    rng = np.random.default_rng(6)
    U = rng.normal(size=(500, 10))
    Y = np.eye(10)[rng.integers(0, 10, 500)]
    info = simplex_xent_prox(U, Y, 0.1).info
    b = appendix_a_bounds(U, Y, 0.1)
    assert np.mean(b.lower > info["shift"] + 1e-9) > 0.9
    # ... but it holds whenever no coordinate is clipped (then the summed identity is exact).
    for U, Y, lam in _random_instances(rng, 100):
        result = simplex_xent_prox(U, Y, lam)
        Z, info = result.value, result.info
        unclipped = (Z > 0).all(axis=1)
        b = appendix_a_bounds(U, Y, lam)
        t = info["shift"][unclipped]
        assert (b.lower[unclipped] <= t + 1e-9 * (1 + np.abs(t))).all()


def test_solver_only_uses_verified_brackets():
    # Rows where the paper's lower bound is invalid still converge to the right answer.
    rng = np.random.default_rng(7)
    U = rng.normal(size=(300, 8))
    Y = np.eye(8)[rng.integers(0, 8, 300)]
    result = simplex_xent_prox(U, Y, 0.3)
    Z, info = result.value, result.info
    assert info["converged"].all()
    np.testing.assert_allclose(Z, _z_of_shift(U, Y, 0.3, info["shift"]), atol=TOL_EXACT)


@pytest.mark.parametrize(("scale", "lam"), [(1e6, 1.0), (1.0, 1e300), (1e150, 1e10), (1e3, 1e-8)])
def test_overflow_guard(scale, lam):
    rng = np.random.default_rng(8)
    U = scale * rng.normal(size=(6, 5))
    Y = np.eye(5)[rng.integers(0, 5, 6)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = appendix_a_bounds(U, Y, lam)
        result = simplex_xent_prox(U, Y, lam)
        Z, info = result.value, result.info
        lo, hi = xent_bracket(U, Y, lam)
    for arr in (b.upper, lo, hi, Z):
        assert np.isfinite(arr).all()
    assert not np.isnan(b.lower).any() and not np.isnan(b.lower_corrected).any()
    assert (Z >= 0).all()
    np.testing.assert_allclose(Z.sum(axis=1), 1.0, atol=1e-9)
    assert info["converged"].all()


def test_overflow_guard_returns_minus_inf():
    U = np.array([[0.0, 50.0, -50.0]])
    Y = np.array([[1.0, 0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = appendix_a_bounds(U, Y, 10.0)  # theta ~ 2.5e4: e^theta overflows
    assert b.lower[0] == -np.inf and b.lower_corrected[0] == -np.inf
    assert b.z_min[0, 0] == 0.0


def test_xent_dtype_and_shapes():
    rng = np.random.default_rng(9)
    U = rng.normal(size=(4, 3)).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    Z = simplex_xent_prox(U, Y, 1.0).value
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z.sum(axis=1), 1.0, atol=1e-6)
    assert simplex_xent_prox(U.astype(np.float64), Y, 1.0).value.dtype == np.float64
    z1 = simplex_xent_prox(U[0].astype(np.float64), Y[0], 1.0).value
    assert z1.shape == (3,)


@pytest.mark.parametrize(
    ("U", "Y", "lam", "match"),
    [
        (np.ones((2, 3)), np.ones((2, 2)), 1.0, "shape"),
        (np.array([[np.nan, 0.0]]), np.array([[1.0, 0.0]]), 1.0, "U"),
        (np.zeros((1, 2)), np.array([[np.inf, 0.0]]), 1.0, "Y"),
        (np.zeros((1, 2)), np.array([[-1.0, 0.0]]), 1.0, "Y"),
        (np.zeros((1, 2)), np.array([[1.0, 0.0]]), 0.0, "lam"),
        (np.zeros((1, 2)), np.array([[1.0, 0.0]]), -2.0, "lam"),
        (np.zeros((1, 2)), np.array([[1.0, 0.0]]), np.nan, "lam"),
        (np.zeros((1, 2)), np.array([[1.0, 0.0]]), 1e-320, "lam"),
    ],
)
def test_xent_bad_input(U, Y, lam, match):
    with pytest.raises(ValueError, match=match):
        simplex_xent_prox(U, Y, lam)
    with pytest.raises(ValueError, match=match):
        appendix_a_bounds(U, Y, lam)
