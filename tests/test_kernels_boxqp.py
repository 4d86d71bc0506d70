# SPDX-License-Identifier: Apache-2.0
"""The hidden-state step against CVXPY, closed forms, KKT conditions and monotonicity."""

import functools
import warnings

import cvxpy as cp
import numpy as np
import pytest

from cvx_lifted.kernels import (
    SIGMOID_FY,
    TANH_FY,
    FYCoupling,
    L2Coupling,
    ReluFenchelCoupling,
    SoftmaxCoupling,
    state_step,
)

CLARABEL_TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
BOXES = [(0.0, np.inf), (0.0, 1.0), (-1.0, 1.0), (-np.inf, np.inf)]


def _problem(m, p, q, scale, seed):
    rng = np.random.default_rng(seed)
    U = scale * rng.normal(size=(m, p))
    W = rng.normal(size=(q, p)) / np.sqrt(p) * 1.5
    b = 0.3 * rng.normal(size=q)
    T = np.abs(scale * rng.normal(size=(m, q)))
    Y = np.eye(q)[rng.integers(0, q, m)]
    return U, W, b, T, Y


def _coupling(kind, T, Y):
    return {"l2": L2Coupling(T), "relu": ReluFenchelCoupling(T), "softmax": SoftmaxCoupling(Y)}[
        kind
    ]


def _objective_rows(Z, U, W, b, coupling, a, c):
    rows = 0.5 * a * np.sum((Z - U) ** 2, axis=1)
    V = Z @ W.T + b
    if isinstance(coupling, L2Coupling):
        g = 0.5 * np.sum((coupling.target - V) ** 2, axis=1)
    elif isinstance(coupling, ReluFenchelCoupling):
        g = np.sum(0.5 * np.maximum(V, 0) ** 2 - V * coupling.target, axis=1)
    else:
        vmax = V.max(axis=1, keepdims=True)
        lse = np.log(np.exp(V - vmax).sum(axis=1)) + vmax[:, 0]
        g = lse - np.sum(coupling.target * V, axis=1)
    return rows + c * g


def _cvxpy_solution(U, W, b, kind, T, Y, a, c, lo, hi):
    m, p = U.shape
    Z = cp.Variable((m, p))
    V = Z @ W.T + np.ones((m, 1)) @ b[None, :]
    if kind == "l2":
        g = 0.5 * cp.sum_squares(T - V)
    elif kind == "relu":
        g = cp.sum(0.5 * cp.square(cp.pos(V)) - cp.multiply(V, T))
    else:
        g = cp.sum(cp.log_sum_exp(V, axis=1)) - cp.sum(cp.multiply(Y, V))
    cons = ([Z >= lo] if np.isfinite(lo) else []) + ([Z <= hi] if np.isfinite(hi) else [])
    prob = cp.Problem(cp.Minimize(a / 2 * cp.sum_squares(Z - U) + c * g), cons)
    with warnings.catch_warnings():  # accuracy is asserted by the caller
        warnings.simplefilter("ignore", UserWarning)
        opts = CLARABEL_TIGHT if kind != "softmax" else {k: 1e-12 for k in CLARABEL_TIGHT}
        prob.solve(solver="CLARABEL", **opts)
    return Z.value


def _kkt_residual(Z, U, W, b, coupling, a, c, lo, hi):
    V = Z @ W.T + b
    _, G = coupling.value_grad(V)
    grad = a * (Z - U) + c * G @ W
    return np.abs(Z - np.clip(Z - grad, lo, hi)).max()


@pytest.mark.parametrize("kind", ["l2", "relu", "softmax"])
@pytest.mark.parametrize("method", ["newton", "fista", "dual"])
@pytest.mark.parametrize(("scale", "box"), [(0.5, BOXES[0]), (3.0, BOXES[1]), (1.0, BOXES[2])])
def test_state_step_vs_cvxpy(kind, method, scale, box):
    if method == "dual" and kind != "l2":
        pytest.skip("the dual method is for the L2 coupling only")
    lo, hi = box
    seed = 100 * ["l2", "relu", "softmax"].index(kind) + int(10 * scale)  # fixed per case
    U, W, b, T, Y = _problem(6, 7, 4, scale, seed=seed)
    a, c = 0.8, 2.5
    cpl = _coupling(kind, T, Y)
    result = state_step(U, W, b, cpl, a, c, lo, hi, method=method, tol=1e-11)
    Z, info = result.value, result.info
    assert info["converged"].all()
    assert info["method"] == method
    Z_ref = _cvxpy_solution(U, W, b, kind, T, Y, a, c, lo, hi)
    np.testing.assert_allclose(Z, Z_ref, atol=2e-6 * max(1.0, scale))
    assert _kkt_residual(Z, U, W, b, cpl, a, c, lo, hi) < 1e-9 * max(1.0, scale)
    f = _objective_rows(Z, U, W, b, cpl, a, c)
    f_ref = _objective_rows(Z_ref, U, W, b, cpl, a, c)
    assert (f <= f_ref + 1e-9 * (1 + np.abs(f_ref))).all()


def test_unconstrained_l2_closed_form():
    U, W, b, T, _ = _problem(8, 6, 3, 1.0, seed=1)
    a, c = 1.3, 0.6
    H = a * np.eye(6) + c * W.T @ W
    Z_exact = np.linalg.solve(H, (a * U + c * (T - b) @ W).T).T
    for method in ("newton", "fista", "dual"):
        Z = state_step(U, W, b, L2Coupling(T), a, c, method=method, tol=1e-13).value
        np.testing.assert_allclose(Z, Z_exact, atol=1e-11)


def test_c_zero_is_projection():
    U, W, b, T, _ = _problem(5, 4, 3, 2.0, seed=2)
    Z = state_step(U, W, b, L2Coupling(T), 1.0, 0.0, -0.5, 0.5).value
    np.testing.assert_array_equal(Z, np.clip(U, -0.5, 0.5))


def test_fista_with_shared_hessian_route():
    # L2 coupling with p < 2q uses the precomputed H = aI + cW^T W (one GEMM per iteration).
    U, W, b, T, Y = _problem(6, 5, 8, 1.0, seed=3)
    result = state_step(U, W, b, L2Coupling(T), 0.5, 1.5, 0.0, np.inf, method="fista", tol=1e-11)
    Z, info = result.value, result.info
    Z_ref = _cvxpy_solution(U, W, b, "l2", T, Y, 0.5, 1.5, 0.0, np.inf)
    np.testing.assert_allclose(Z, Z_ref, atol=2e-6)
    assert info["converged"].all()


def test_auto_method_choice():
    U, W, b, T, _ = _problem(3, 40, 4, 1.0, seed=4)
    info = state_step(U, W, b, L2Coupling(T), 1.0, 1.0, 0.0, np.inf).info
    assert info["method"] == "dual"
    info = state_step(U, W, b, ReluFenchelCoupling(T), 1.0, 1.0, 0.0, np.inf).info
    assert info["method"] == "newton"
    with pytest.raises(ValueError, match="L2Coupling"):
        state_step(U, W, b, ReluFenchelCoupling(T), 1.0, 1.0, method="dual")
    rng = np.random.default_rng(4)
    W40 = rng.normal(size=(40, 40)) / 40
    T40 = np.abs(rng.normal(size=(3, 40)))
    info = state_step(U, W40, np.zeros(40), L2Coupling(T40), 1.0, 1.0, 0.0, np.inf).info
    assert info["method"] == "fista"


@pytest.mark.parametrize("kind", ["l2", "relu", "softmax"])
@pytest.mark.parametrize("method", ["newton", "fista", "dual"])
def test_monotone_and_warm_start(kind, method):
    if method == "dual" and kind != "l2":
        pytest.skip("the dual method is for the L2 coupling only")
    U, W, b, T, Y = _problem(20, 6, 3, 2.0, seed=5)
    cpl = _coupling(kind, T, Y)
    a, c, lo, hi = 0.3, 4.0, 0.0, 1.0
    rng = np.random.default_rng(6)
    Z0 = rng.normal(size=U.shape) * 3.0  # projected onto the box inside
    f0 = _objective_rows(np.clip(Z0, lo, hi), U, W, b, cpl, a, c)
    for max_iter in (1, 2, 1000):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # hitting max_iter is reported in info, not warned
            result = state_step(U, W, b, cpl, a, c, lo, hi, Z0=Z0, max_iter=max_iter, method=method)
            Z, info = result.value, result.info
        f = _objective_rows(Z, U, W, b, cpl, a, c)
        assert (f <= f0 + 1e-12 * (1 + np.abs(f0))).all()
        np.testing.assert_allclose(info["objective"], f, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(info["objective_start"], f0, rtol=1e-10, atol=1e-10)
        assert ((Z >= lo) & (Z <= hi)).all()
        if max_iter == 1 and method == "fista":
            assert not info["converged"].all()
    # restarting from the solution stops at once
    Z_star = state_step(U, W, b, cpl, a, c, lo, hi, method=method, tol=1e-10).value
    result = state_step(U, W, b, cpl, a, c, lo, hi, Z0=Z_star, method=method, tol=1e-8)
    Z2, info = result.value, result.info
    assert info["n_iter"].max() <= 1
    np.testing.assert_allclose(Z2, Z_star, atol=1e-9)


def test_chunking_gives_same_answer():
    U, W, b, T, _ = _problem(37, 6, 3, 1.0, seed=7)
    Z1 = state_step(U, W, b, L2Coupling(T), 1.0, 2.0, 0.0, np.inf, chunk_rows=5, tol=1e-12).value
    Z2 = state_step(U, W, b, L2Coupling(T), 1.0, 2.0, 0.0, np.inf, chunk_rows=4096, tol=1e-12).value
    np.testing.assert_allclose(Z1, Z2, atol=1e-11)


@pytest.mark.parametrize(
    "cls",
    [
        L2Coupling,
        ReluFenchelCoupling,
        SoftmaxCoupling,
        functools.partial(FYCoupling, SIGMOID_FY),
        functools.partial(FYCoupling, TANH_FY),
    ],
    ids=["l2", "relu", "softmax", "fy-sigmoid", "fy-tanh"],
)
def test_coupling_gradients_finite_differences(cls):
    rng = np.random.default_rng(8)
    V = rng.normal(size=(4, 5))
    T = np.abs(rng.normal(size=(4, 5)))
    if cls is SoftmaxCoupling:
        T = T / T.sum(axis=1, keepdims=True)
    cpl = cls(T)
    _, G = cpl.value_grad(V)
    h = 1e-6
    for i, j in [(0, 0), (1, 3), (3, 4)]:
        E = np.zeros_like(V)
        E[i, j] = h
        fd = (cpl.value_grad(V + E)[0] - cpl.value_grad(V - E)[0]) / (2 * h)
        assert fd == pytest.approx(G[i, j], abs=1e-7)


def test_softmax_coupling_is_stable():
    V = np.array([[1e4, -1e4, 0.0], [800.0, 800.0, 799.0]])
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        val, G = SoftmaxCoupling(Y).value_grad(V)
    assert np.isfinite(val) and np.isfinite(G).all()
    # row 1: lse = 1e4 (+ e^-1e4), minus v_2 = -1e4; row 2: lse = 800 + log(2 + e^-1), minus 800
    assert val == pytest.approx(2e4 + np.log(2 + np.exp(-1.0)), rel=1e-14)


def test_float32_in_float32_out():
    U, W, b, T, _ = _problem(6, 5, 3, 1.0, seed=9)
    f32 = [x.astype(np.float32) for x in (U, W, b, T)]
    Z = state_step(f32[0], f32[1], f32[2], L2Coupling(f32[3]), 1.0, 1.0, 0.0, np.inf).value
    assert Z.dtype == np.float32
    Z64 = state_step(U, W, b, L2Coupling(T), 1.0, 1.0, 0.0, np.inf).value
    assert Z64.dtype == np.float64
    np.testing.assert_allclose(Z, Z64, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"a": 0.0}, "a"),
        ({"a": -1.0}, "a"),
        ({"c": -1.0}, "c"),
        ({"c": np.nan}, "c"),
        ({"lo": 1.0, "hi": 1.0}, "lo"),
        ({"lo": np.nan}, "lo"),
        ({"U": np.full((4, 5), np.nan)}, "U"),
        ({"W": np.ones((3, 6))}, "W"),
        ({"b": np.ones(2)}, "b"),
        ({"Z0": np.ones((4, 4))}, "Z0"),
        ({"method": "admm"}, "method"),
        ({"tol": 0.0}, "tol"),
        ({"coupling": "l2"}, "coupling"),
        ({"coupling": L2Coupling(np.ones((3, 3)))}, "target"),
    ],
)
def test_bad_input(kwargs, match):
    U, W, b, T, _ = _problem(4, 5, 3, 1.0, seed=10)
    args = {"U": U, "W": W, "b": b, "coupling": L2Coupling(T), "a": 1.0, "c": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        state_step(**args)
    with pytest.raises(ValueError, match="T"):
        L2Coupling(np.array([[np.inf]]))


def test_dual_hands_stalled_rows_to_the_primal_newton_method(monkeypatch):
    # With no dual steps allowed, every row that is not already optimal at its start "stalls"
    # and must be finished by the primal Newton fallback -- to the same answer and residual.
    import cvx_lifted.kernels.boxqp as boxqp

    U, W, b, T, _ = _problem(40, 12, 4, 1.0, seed=5)
    args = (U, W, b, L2Coupling(T), 0.7, 1.9, 0.0, np.inf)
    Z_ref = state_step(*args, method="newton", tol=1e-11).value
    monkeypatch.setattr(boxqp, "_DUAL_MAX_ITER", 0)
    result = state_step(*args, method="dual", tol=1e-11)
    Z, info = result.value, result.info
    assert info["method"] == "dual"
    assert info["converged"].all() and (info["n_iter"] >= 1).all()
    np.testing.assert_allclose(Z, Z_ref, atol=1e-10)
    assert _kkt_residual(Z, *args) < 1e-9


@pytest.mark.parametrize("box", [(0.0, np.inf), (-1.0, 1.0)])
def test_dual_residual_bounds_the_kkt_residual(box):
    """Rows the dual method certifies by its bound satisfy the primal stopping test."""
    lo, hi = box
    U, W, b, T, _ = _problem(300, 30, 5, 1.0, seed=12)
    args = (U, W, b, L2Coupling(T), 0.9, 1.7, lo, hi)
    result = state_step(*args, method="dual", tol=1e-9)
    Z, info = result.value, result.info
    assert info["converged"].all()
    V = Z @ W.T + b
    grad = 0.9 * (Z - U) + 1.7 * (V - T) @ W
    L = 0.9 + 1.7 * np.linalg.norm(W, 2) ** 2
    kkt = L * np.abs(Z - np.clip(Z - grad / L, lo, hi)).max(axis=1)
    assert (kkt <= info["residual"] * (1 + 1e-6) + 1e-13).all()
    assert (kkt <= 1e-9 * (1 + np.abs(grad).max(axis=1))).all()
    Z_ref = state_step(*args, method="newton", tol=1e-11).value
    np.testing.assert_allclose(Z, Z_ref, atol=1e-8)


@pytest.mark.parametrize("stopped", [0.1, 0.5])
@pytest.mark.parametrize("box", [(0.0, np.inf), (-1.0, 1.0)])
def test_dual_rows_that_stop_early_leave_the_other_rows_unchanged(stopped, box):
    """A row's answer does not depend on which rows of its chunk stopped before it.

    Rows started at their own solution stop at the first test; the rest take Newton steps.
    With a tenth of the rows stopped they stay in the working arrays (frozen), with half of
    them the arrays are compacted: either way every row equals its answer solved alone.
    """
    lo, hi = box
    U, W, b, T, _ = _problem(120, 25, 6, 1.0, seed=21)
    a, c = 0.8, 1.6
    cpl = L2Coupling(T)
    Z_alone = np.vstack(
        [
            state_step(U[i : i + 1], W, b, L2Coupling(T[i : i + 1]), a, c, lo, hi,
                       method="dual", tol=1e-11).value
            for i in range(U.shape[0])
        ]
    )  # fmt: skip
    Z0 = np.clip(U, lo, hi)
    early = np.random.default_rng(3).random(U.shape[0]) < stopped
    Z0[early] = Z_alone[early]
    result = state_step(U, W, b, cpl, a, c, lo, hi, Z0=Z0, method="dual", tol=1e-11)
    info = result.info
    assert info["converged"].all()
    assert (info["n_iter"][early] == 0).all() and (info["n_iter"][~early] >= 1).all()
    np.testing.assert_allclose(result.value, Z_alone, atol=1e-10)
    assert _kkt_residual(result.value, U, W, b, cpl, a, c, lo, hi) < 1e-9


def test_state_step_cuts_the_rows_into_equal_chunks(monkeypatch):
    """At most ``chunk_rows`` rows per chunk and no short last one (threads share them evenly)."""
    import cvx_lifted.kernels.boxqp as boxqp

    sizes = []
    solve = boxqp._dual_chunk

    def spy(prob, U, T, Z0):
        sizes.append(U.shape[0])
        return solve(prob, U, T, Z0)

    monkeypatch.setattr(boxqp, "_dual_chunk", spy)
    U, W, b, T, _ = _problem(100, 12, 4, 1.0, seed=2)
    result = state_step(U, W, b, L2Coupling(T), 1.0, 1.0, 0.0, np.inf, chunk_rows=40)
    assert sorted(sizes) == [33, 33, 34]
    whole = state_step(U, W, b, L2Coupling(T), 1.0, 1.0, 0.0, np.inf, chunk_rows=100)
    np.testing.assert_allclose(result.value, whole.value, atol=1e-12)
